"""Drawing what the pipeline saw: one small module used by every visual feature (analyze --annotate, the live
preview, the report's production strip). It draws on a copy; the frame itself is never changed."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.core.types import Box

# BGR colours per emotion; anything else is drawn in white.
COLOURS = {
    "happy": (0, 200, 255),
    "sad": (220, 120, 40),
    "surprise": (60, 90, 255),
    "neutral": (190, 190, 190),
    "angry": (40, 40, 220),
    "fear": (200, 60, 160),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FaceMark:
    """One face as drawn: where, what, how sure, the probabilities in label order, its track id if any."""

    box: Box
    label: str
    confidence: float
    probs: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None


def colour(label: str) -> tuple[int, int, int]:
    return COLOURS.get(label, (255, 255, 255))


def annotate(frame: np.ndarray, faces: list[FaceMark]) -> np.ndarray:
    """A copy of `frame` (BGR or grey) with each face's box, its label and confidence (and track id), and a
    small probability bar per class under the box. Same size as the input, always BGR uint8."""
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    h, w = out.shape[:2]
    scale = max(0.4, min(1.0, w / 1000))
    thick = max(1, round(2 * scale))
    for f in faces:
        c = colour(f.label)
        x0, y0 = int(max(0, f.box.x0)), int(max(0, f.box.y0))
        x1, y1 = int(min(w - 1, f.box.x1)), int(min(h - 1, f.box.y1))
        cv2.rectangle(out, (x0, y0), (x1, y1), c, thick)
        text = f"{'#' + str(f.track_id) + ' ' if f.track_id is not None else ''}{f.label} {f.confidence:.2f}"
        (tw, th), base = cv2.getTextSize(text, FONT, 0.6 * scale, thick)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(h - 1, y1 + th + 4)
        cv2.rectangle(out, (x0, ty - th - base), (min(w - 1, x0 + tw + 4), ty + base // 2), c, cv2.FILLED)
        cv2.putText(out, text, (x0 + 2, ty - 2), FONT, 0.6 * scale, (0, 0, 0), thick, cv2.LINE_AA)
        _bars(out, f, x0, y1 + 4, max(40, x1 - x0), scale)
    return out


def _bars(out: np.ndarray, f: FaceMark, x: int, y: int, width: int, scale: float) -> None:
    """One thin horizontal bar per class, its length the probability, in that class's colour."""
    h, w = out.shape[:2]
    bar = max(3, round(6 * scale))
    for i, (label, p) in enumerate(f.probs.items()):
        top = y + i * (bar + 2)
        if top + bar >= h:
            break
        x1 = min(w - 1, x + int(width * max(0.0, min(1.0, p))))
        cv2.rectangle(out, (x, top), (min(w - 1, x + width), top + bar), (40, 40, 40), cv2.FILLED)
        if x1 > x:
            cv2.rectangle(out, (x, top), (x1, top + bar), colour(label), cv2.FILLED)
