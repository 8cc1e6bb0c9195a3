"""The classifier interface the pipeline and the trainer's evaluation are written against."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.core.preprocess import PreprocessSpec
from edge.core.types import Prediction


class Classifier(Protocol):
    name: str
    labels: tuple[str, ...]
    spec: PreprocessSpec

    def classify(self, face: np.ndarray) -> Prediction:
        """`face` is the uint8 output of preprocess_face for this classifier's spec."""
        ...
