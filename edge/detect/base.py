"""The face-detector interface."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.core.types import Box


class Detector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Faces in a uint8 BGR (or grey) frame, highest score first, in frame pixel coordinates."""
        ...
