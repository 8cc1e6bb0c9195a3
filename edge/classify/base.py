"""The classifier interface the pipeline is written against: what it reads, and one call per face."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.core.preprocess import PreprocessSpec


class Classifier(Protocol):
    name: str
    version: str
    variant: str
    labels: tuple[str, ...]
    spec: PreprocessSpec

    def probabilities(self, face: np.ndarray) -> np.ndarray:
        """float32 probabilities in label order for the uint8 output of preprocess_face with this spec."""
        ...

    def probabilities_batch(self, faces: list[np.ndarray]) -> list[np.ndarray]:
        """The same for several faces (one frame's), in as few interpreter calls as the model allows."""
        ...
