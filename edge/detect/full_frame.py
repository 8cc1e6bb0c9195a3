"""The null detector: the whole frame is one face (already-cropped datasets, `analyze --no-detect`)."""

from __future__ import annotations

import numpy as np

from edge.core.types import Box


class FullFrameDetector:
    name = "full-frame"

    def detect(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        return [Box(0.0, 0.0, float(w), float(h), 1.0)]
