"""Small immutable value types passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A face box in pixel coordinates of the frame it came from (x0, y0 inclusive; x1, y1 exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def normalised(self, frame_w: int, frame_h: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) as fractions of the frame size, clipped to [0, 1]."""
        return (_unit(self.x0 / frame_w), _unit(self.y0 / frame_h), _unit(self.x1 / frame_w), _unit(self.y1 / frame_h))


def _unit(v: float) -> float:
    return min(1.0, max(0.0, v))


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for one face, labels in the model's order."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]

    @property
    def top(self) -> tuple[str, float]:
        i = max(range(len(self.probs)), key=self.probs.__getitem__)
        return self.labels[i], self.probs[i]

    def as_dict(self) -> dict[str, float]:
        return {label: round(p, 4) for label, p in zip(self.labels, self.probs, strict=True)}
