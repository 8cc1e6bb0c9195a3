"""A capture thread that keeps only the newest frame: stale frames are dropped and counted.

Fatality boundary for cameras: only the first open, in the caller's thread before READY, may raise a
UserError (a configuration mistake). After that every failure — a lost device, a dropped stream, a
read that raises — is a fault: logged once per outage (FaultState), counted, and the source is reopened
with exponential backoff, forever. A read that *blocks* (a wedged V4L2 driver or GStreamer pipeline)
cannot be interrupted, so `restart()` abandons that thread and its source and starts a fresh pair; the
frame loop calls it after `frame_timeout_s` without a frame (see Pipeline).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge.faults import FaultState

from .base import CameraError, Frame, FrameSource

log = logging.getLogger(__name__)


class LatestFrameCapture:
    def __init__(
        self, source: FrameSource, reconnect_max_s: float = 30.0, make_source: Callable[[], FrameSource] | None = None
    ):
        """make_source builds a fresh source for restart(); without it the same object is reopened."""
        self.make_source = make_source or (lambda: source)
        self.source = source
        self.name = self.source.name
        self.reconnect_max_s = reconnect_max_s
        self.health = FaultState(f"camera {self.name}")
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0  # a thread whose generation is stale was abandoned by restart()
        self.captured = 0
        self.dropped = 0  # frames replaced before the pipeline took them
        self.restarts = 0  # hung reader threads abandoned
        self.ended = False  # a finite source reached its end
        self.heartbeat_mono = time.monotonic()  # the reader finished an operation (read, open attempt, backoff tick)
        self.last_frame_mono: float | None = None

    @property
    def reconnects(self) -> int:
        """Camera outages (each may take many attempts: health.attempts)."""
        return self.health.outages

    def start(self) -> None:
        """Open the source in the caller's thread, so configuration mistakes (UserError) surface before READY.

        A transient fault at start (CameraError: a stream not up yet) is not fatal: the thread keeps retrying.
        """
        opened = True
        try:
            self.source.open()
        except CameraError as exc:
            self.health.fail(exc)
            opened = False
        self._spawn(self.source, opened)

    def _spawn(self, source: FrameSource, opened: bool) -> None:
        self._generation += 1
        self.heartbeat_mono = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(source, opened, self._generation), name="capture", daemon=True
        )
        self._thread.start()

    def restart(self, reason: str) -> None:
        """Abandon the current reader (it may be blocked forever inside read/open) and start a fresh source."""
        self.restarts += 1
        self.health.fail(f"{reason}; abandoning the blocked reader and reopening")
        try:
            source = self.make_source()
        except Exception as exc:  # noqa: BLE001 - after READY a camera problem is a fault, never fatal
            self.health.fail(exc)
            return
        self.source = source
        self._spawn(source, opened=False)

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _backoff(self, delay: float, generation: int) -> None:
        end = time.monotonic() + delay
        while self._current(generation) and time.monotonic() < end:
            self._stop.wait(min(0.5, max(0.0, end - time.monotonic())))
            self.heartbeat_mono = time.monotonic()

    def _run(self, source: FrameSource, opened: bool, generation: int) -> None:
        delay = 0.5
        try:
            while self._current(generation):
                if not opened:
                    try:
                        source.close()
                        source.open()
                        opened = True
                    except Exception as exc:  # noqa: BLE001 - UserError too: after start-up it is a fault
                        self.heartbeat_mono = time.monotonic()
                        self.health.fail(exc)
                        self._backoff(delay, generation)
                        delay = min(self.reconnect_max_s, delay * 2)
                        continue
                try:
                    img = source.read()
                except Exception as exc:  # noqa: BLE001
                    self.heartbeat_mono = time.monotonic()
                    if not self._current(generation):
                        break
                    self.health.fail(exc)
                    opened = False
                    continue
                self.heartbeat_mono = time.monotonic()
                if not self._current(generation):
                    break  # abandoned while blocked: its frame is stale
                if img is None:
                    self.ended = True
                    break
                delay = 0.5
                self.health.ok()
                with self._cond:
                    if self._latest is not None:
                        self.dropped += 1
                    now = time.monotonic()
                    self._latest = Frame(img, now)
                    self.last_frame_mono = now
                    self.captured += 1
                    self._cond.notify_all()
        finally:
            if generation != self._generation:
                source.close()  # abandoned: nobody else will close it
            with self._cond:
                self._cond.notify_all()

    def get(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet taken (waiting up to timeout); None if none arrived."""
        with self._cond:
            if self._latest is None and not self.finished:
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            return frame

    @property
    def finished(self) -> bool:
        """Only a finite source (a file or folder without loop) finishes; a live camera never does."""
        return self.ended and self._latest is None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                log.warning("camera %s: the reader is blocked; leaving it behind", self.name)
                return
        self.source.close()
