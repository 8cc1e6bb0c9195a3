"""The camera interfaces: a FrameSource (open, read the next frame, close) and the Capture the frame loop reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.faults import FaultState


class CameraError(Exception):
    """An environmental camera fault (unplugged, stream dropped): logged, counted and retried, never fatal."""


class FrameSource(Protocol):
    name: str

    def open(self) -> None:
        """Raise UserError for a configuration mistake, CameraError for a transient fault."""
        ...

    def read(self) -> np.ndarray | None:
        """The next uint8 BGR frame; None at the end of a finite source; CameraError when the device is lost."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    t_mono: float  # time.monotonic() at capture


class Capture(Protocol):
    """What the frame loop needs of a capture: the newest frame, counters for stats, and liveness for the
    watchdog. LatestFrameCapture (capture.py) is the implementation."""

    name: str
    captured: int  # frames read from the source
    dropped: int  # frames replaced before the loop took them
    restarts: int  # blocked readers abandoned
    ended: bool  # a finite source reached its end
    health: FaultState  # camera outages: failing, attempts, last_error
    heartbeat_mono: float  # the reader finished an operation (read, open attempt, backoff tick)
    last_frame_mono: float | None

    @property
    def reconnects(self) -> int: ...

    @property
    def finished(self) -> bool:
        """A finite source ended and its last frame was taken."""
        ...

    def get(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet taken, waiting up to timeout; None when none arrived."""
        ...

    def restart(self, reason: str) -> None:
        """Abandon a blocked reader and start a fresh source."""
        ...
