"""The classifier interface the pipeline and the trainer's evaluation are written against."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.core.preprocess import PreprocessSpec
from edge.core.types import Prediction


class Classifier(Protocol):
    name: str
    version: str
    variant: str
    labels: tuple[str, ...]
    spec: PreprocessSpec

    def probabilities(self, face: np.ndarray) -> np.ndarray:
        """float32 probabilities in label order for the uint8 output of preprocess_face with this spec."""
        ...

    def classify(self, face: np.ndarray) -> Prediction:
        """The same as an immutable Prediction (labels + probabilities)."""
        ...
