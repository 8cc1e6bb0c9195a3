"""The frame-source interface: open, read the next frame, close."""

from __future__ import annotations

from typing import Protocol

import numpy as np


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

    def close(self) -> None:
        ...
