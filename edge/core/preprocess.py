"""The one preprocessing implementation: (frame, face box, spec) -> the model's uint8 input.

The trainer imports it to build its datasets and its int8 calibration set; the device calls it at
run time. Normalisation lives inside the model (a Rescaling layer), so the output is raw bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from .errors import UserError
from .types import Box

COLOR_MODES = ("gray", "rgb")


@dataclass(frozen=True)
class PreprocessSpec:
    """How a face crop becomes model input. Stored in every model's manifest entry."""

    size: int = 100  # output side in pixels (square)
    channels: int = 3  # model input channels; "gray" is replicated across them
    color: str = "gray"  # "gray": luma only (FER2013 is grey); "rgb": colour in RGB order
    # Detector boxes are grown and shifted to frame a face the way FER2013 crops do; measured with
    # `emotion-trainer crop-stats` (BlazeFace on FER2013 faces). Ignored for already-cropped images.
    margin: float = 0.075  # fraction of the box's longer side added on each side
    offset_y: float = -0.065  # crop centre shift, as a fraction of the box's longer side (negative = up)
    # Exposure normalisation, (lowest mean, highest mean, lowest std) of a face's grey levels after resizing: a face
    # outside that range (too dark, too bright, too flat) is stretched linearly into it, any other is left as it is;
    # None = off. `emotion-trainer evaluate` sets it from the training faces (5th/95th percentiles of their means,
    # 5th of their stds) when val shows it pays (`--exposure`).
    exposure: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.color not in COLOR_MODES:
            raise UserError(f"preprocess color {self.color!r} is not one of {COLOR_MODES}")
        if self.exposure is not None:
            if isinstance(self.exposure, list):  # as JSON stores it
                object.__setattr__(self, "exposure", tuple(self.exposure))
            ok = isinstance(self.exposure, tuple) and len(self.exposure) == 3
            ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.exposure)
            if not ok or not 0.0 <= self.exposure[0] <= self.exposure[1] <= 255.0 or not 0.0 <= self.exposure[2] <= 128:
                raise UserError(
                    f"preprocess exposure {self.exposure!r} is not [lowest mean, highest mean, lowest std] "
                    "(0 <= means <= 255, std 0-128) or null"
                )
        if self.color == "rgb" and self.channels != 3:
            raise UserError("preprocess color 'rgb' needs channels = 3")
        if self.size < 8 or self.channels not in (1, 3) or not 0.0 <= self.margin <= 1.0 or abs(self.offset_y) > 0.5:
            raise UserError(f"preprocess spec out of range: {self}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def to_dict(self) -> dict[str, Any]:
        """As the manifest stores it; `exposure` only when on, so older specs (and cache keys) are unchanged."""
        d = asdict(self)
        if self.exposure is None:
            del d["exposure"]
        else:
            d["exposure"] = [float(v) for v in self.exposure]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"unknown preprocess keys {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


def square_box(
    box: Box | None, frame_w: int, frame_h: int, margin: float, offset_y: float = 0.0
) -> tuple[int, int, int]:
    """Integer (x0, y0, side) of the square around `box`, grown by `margin` and shifted by `offset_y`.

    `box=None` means the frame already is the face crop: its centred square, without margin.
    """
    if box is None:
        box, margin, offset_y = Box(0, 0, frame_w, frame_h), 0.0, 0.0
    longer = max(box.width, box.height)
    cx = (box.x0 + box.x1) / 2.0
    cy = (box.y0 + box.y1) / 2.0 + offset_y * longer
    side = longer * (1.0 + 2.0 * margin)
    side_i = max(1, int(round(side)))
    return int(round(cx - side_i / 2.0)), int(round(cy - side_i / 2.0)), side_i


def _to_color_mode(frame: np.ndarray, color: str) -> np.ndarray:
    """Frames are BGR (OpenCV order) or single-channel grey."""
    if frame.ndim == 2:
        return frame if color == "gray" else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return _to_color_mode(frame[:, :, 0], color)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        bgr = frame[:, :, :3]
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if color == "gray" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    raise UserError(f"frame has unsupported shape {frame.shape}; expected HxW, HxWx1, HxWx3 (BGR) or HxWx4")


def preprocess_face(frame: np.ndarray, box: Box | None, spec: PreprocessSpec) -> np.ndarray:
    """Crop the (margin-grown, square) face out of a uint8 frame and return `spec.input_shape` uint8.

    Parts of the square that fall outside the frame are filled by edge replication, so faces at the
    border keep their scale instead of being stretched.
    """
    if frame.dtype != np.uint8:
        raise UserError(f"frame dtype is {frame.dtype}; frames must be uint8")
    img = _to_color_mode(frame, spec.color)
    h, w = img.shape[:2]
    x0, y0, side = square_box(box, w, h, spec.margin, spec.offset_y)
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + side - w), max(0, y0 + side - h)
    crop = img[max(0, y0) : min(h, y0 + side), max(0, x0) : min(w, x0 + side)]
    if crop.size == 0:
        raise UserError(f"face box {box} lies outside the {w}x{h} frame")
    if pad_l or pad_t or pad_r or pad_b:
        crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    # INTER_AREA when shrinking avoids aliasing; INTER_LINEAR when enlarging (FER2013 is 48x48).
    interp = cv2.INTER_AREA if side > spec.size else cv2.INTER_LINEAR
    out = cv2.resize(crop, (spec.size, spec.size), interpolation=interp)
    if spec.exposure is not None:
        out = normalize_exposure(out, spec.exposure)
    if spec.color == "gray":
        out = np.repeat(out[:, :, None], spec.channels, axis=2) if spec.channels > 1 else out[:, :, None]
    return np.ascontiguousarray(out, dtype=np.uint8)


def normalize_exposure(face: np.ndarray, bounds: tuple[float, float, float]) -> np.ndarray:
    """A uint8 face whose grey-level mean lies outside [bounds[0], bounds[1]] or whose standard deviation is below
    bounds[2] (all channels together), mapped linearly to the nearest mean and std inside them and clipped to 0-255;
    any other face is returned as it is. Takes out under/over-exposure and flat light, leaves typical faces alone."""
    f = face.astype(np.float32)
    mean, std = float(f.mean()), float(f.std())
    to_mean, to_std = min(max(mean, bounds[0]), bounds[1]), max(std, bounds[2])
    if to_mean == mean and to_std == std:
        return face
    out = (f - mean) * np.float32(to_std / max(std, 1.0)) + np.float32(to_mean)
    return np.clip(out, 0.0, 255.0).round().astype(np.uint8)
