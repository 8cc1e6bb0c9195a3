"""A capture thread that keeps only the newest frame: stale frames are dropped and counted.

A lost camera or stream is reopened with exponential backoff (reported, counted), never a crash loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge.core.errors import UserError

from .base import CameraError, FrameSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    seq: int  # capture sequence number (gaps = dropped frames)
    t_mono: float  # time.monotonic() at capture


class LatestFrameCapture:
    def __init__(self, source: FrameSource, reconnect_max_s: float = 30.0):
        self.source = source
        self.reconnect_max_s = reconnect_max_s
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.captured = 0
        self.dropped = 0  # frames replaced before the pipeline took them
        self.reconnects = 0
        self.ended = False  # a finite source reached its end
        self.error: BaseException | None = None  # a UserError raised while reopening

    def start(self) -> None:
        """Open the source in the caller's thread (so configuration errors surface at start-up), then capture.

        A transient fault at start (a stream not up yet) is not fatal: the thread keeps retrying.
        """
        opened = True
        try:
            self.source.open()
        except CameraError as exc:
            log.warning("camera %s: %s", self.source.name, exc)
            opened = False
        self._thread = threading.Thread(target=self._run, args=(opened,), name="capture", daemon=True)
        self._thread.start()

    def _reopen(self) -> bool:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.source.close()
                self.source.open()
                log.warning("camera %s reopened after %d attempt(s)", self.source.name, self.reconnects)
                return True
            except CameraError as exc:
                self.reconnects += 1
                log.warning("camera %s: %s; retrying in %.1f s", self.source.name, exc, delay)
                self._stop.wait(delay)
                delay = min(self.reconnect_max_s, delay * 2)
        return False

    def _run(self, opened: bool = True) -> None:
        seq = 0
        try:
            if not opened and not self._reopen():
                return
        except UserError as exc:
            self.error = exc
            return
        while not self._stop.is_set():
            try:
                img = self.source.read()
            except CameraError as exc:
                self.reconnects += 1
                log.warning("camera %s: %s; reconnecting", self.source.name, exc)
                try:
                    if not self._reopen():
                        break
                except UserError as exc2:
                    self.error = exc2
                    break
                continue
            except UserError as exc:
                self.error = exc
                break
            if img is None:
                self.ended = True
                break
            seq += 1
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = Frame(img, seq, time.monotonic())
                self.captured += 1
                self._cond.notify_all()
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
        return self.ended or self.error is not None or (self._thread is not None and not self._thread.is_alive())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.source.close()
