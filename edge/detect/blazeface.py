"""BlazeFace (MediaPipe) short- and full-range face detectors on the TFLite interpreter.

Anchors and box decoding follow MediaPipe's SsdAnchorsCalculator / TensorsToDetectionsCalculator
options for these two graphs; the image is letterboxed to the square input so faces keep their shape.

`pad` adds a second pass for faces that fill the frame or are cut by its edges (close-ups, tightly cropped
photos), which BlazeFace often misses or boxes short: the frame inside a black border of `pad` times its longer
side, the two passes' faces merged by score (a face both find is kept once, as the pass that scored it higher saw it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.assets import asset_path
from edge.core.errors import UserError
from edge.core.runtime import make_interpreter
from edge.core.types import Box


@dataclass(frozen=True)
class _Variant:
    asset: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: int  # aspect ratio 1.0 plus, for short range, the interpolated scale


_VARIANTS = {
    "short": _Variant("face_detection_short_range", 128, (8, 16, 16, 16), 2),
    "full": _Variant("face_detection_full_range_sparse", 192, (4,), 1),
}


def ssd_anchors(size: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1]; layers with equal strides share one grid, as in MediaPipe."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = per_cell * (j - i)
        fm = int(np.ceil(size / strides[i]))
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, n, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / np.maximum(_area(box) + _area(others) - inter, 1e-9)


def _area(b: np.ndarray) -> np.ndarray:
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe-style weighted NMS: overlapping boxes are averaged by score instead of discarded."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    while len(boxes):
        overlap = _iou(boxes[0], boxes) >= iou_threshold
        w = scores[overlap]
        out.append(((boxes[overlap] * w[:, None]).sum(0) / w.sum(), float(scores[0])))
        boxes, scores = boxes[~overlap], scores[~overlap]
    return out


class BlazeFaceDetector:
    """Faces in a frame, with a score threshold, NMS, a minimum size and a maximum count."""

    def __init__(
        self,
        variant: str = "short",
        score_threshold: float = 0.5,
        iou_threshold: float = 0.3,
        min_size_px: int = 0,
        max_faces: int = 10,
        num_threads: int = 1,
        pad: float = 0.0,
    ):
        if variant not in _VARIANTS:
            raise UserError(f"unknown BlazeFace variant {variant!r}; fix: use 'short' or 'full'")
        if not 0.0 <= pad <= 1.0:
            raise UserError(f"detector pad {pad} is out of range; fix: a fraction from 0 (off) to 1")
        v = _VARIANTS[variant]
        self.name = f"blazeface-{variant}"
        self.size = v.size
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.min_size_px = min_size_px
        self.max_faces = max_faces
        self.pad = pad
        self._interp = make_interpreter(asset_path(v.asset), num_threads)
        self._in = self._interp.get_input_details()[0]
        outs = sorted(self._interp.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self._reg, self._cls = outs[0]["index"], outs[1]["index"]
        self._anchors = ssd_anchors(v.size, v.strides, v.anchors_per_cell)
        if int(outs[0]["shape"][1]) != len(self._anchors):
            raise UserError(
                f"{self.name} model has {outs[0]['shape'][1]} anchors, expected {len(self._anchors)}; "
                "fix: run 'emotion-edge fetch --force'"
            )

    def _letterbox(self, frame: np.ndarray, pad: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pad to a centred square with black borders (as MediaPipe does) and resize to the input size; `pad` adds
        that fraction of the longer side as a black border all round. Returns the input image and (a, b): frame
        pixels = input coordinates in [0, 1] * a - b, per (x, y, x, y)."""
        h, w = frame.shape[:2]
        longer = max(h, w)
        border = int(round(pad * longer))
        if border and longer + 2 * border > self.size:
            # A frame larger than the input: shrink it first, then place it, instead of building the bordered
            # frame at full size (a 640x480 frame would become 960x960) only to shrink that.
            scale = self.size / (longer + 2 * border)
            sw, sh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
            small = _rgb(cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA))
            ox, oy = (self.size - sw) // 2, (self.size - sh) // 2
            img = np.zeros((self.size, self.size, 3), np.uint8)
            img[oy : oy + sh, ox : ox + sw] = small
            ax, ay = self.size * w / sw, self.size * h / sh
            return img, np.array([ax, ay, ax, ay]), np.array([ox * w / sw, oy * h / sh, ox * w / sw, oy * h / sh])
        rgb = _rgb(frame)
        side = longer + 2 * border
        pad_x, pad_y = (side - w) // 2, (side - h) // 2
        square = cv2.copyMakeBorder(rgb, pad_y, side - h - pad_y, pad_x, side - w - pad_x, cv2.BORDER_CONSTANT, value=0)
        resized = cv2.resize(
            square, (self.size, self.size), interpolation=cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR
        )
        return resized, np.full(4, float(side)), np.array([pad_x, pad_y, pad_x, pad_y])

    def detect(self, frame: np.ndarray) -> list[Box]:
        faces = self._pass(frame, 0.0)
        if self.pad > 0.0:
            kept: list[Box] = []
            for box in sorted(faces + self._pass(frame, self.pad), key=lambda b: -b.score):
                if not kept or _iou(_xyxy(box), np.array([_xyxy(k) for k in kept])).max() < self.iou_threshold:
                    kept.append(box)
            faces = kept
        return faces[: self.max_faces]

    def _pass(self, frame: np.ndarray, pad: float) -> list[Box]:
        """Faces of one pass, highest score first, clipped to the frame, the minimum size applied."""
        img, a, b0 = self._letterbox(frame, pad)
        x = (img.astype(np.float32) / 127.5 - 1.0)[None]
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._reg)[0]
        logits = np.clip(self._interp.get_tensor(self._cls)[0, :, 0], -100.0, 100.0)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        cx = raw[:, 0] / self.size + anchors[:, 0]
        cy = raw[:, 1] / self.size + anchors[:, 1]
        bw, bh = raw[:, 2] / self.size, raw[:, 3] / self.size
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        faces = []
        h, w = frame.shape[:2]
        for b, s in weighted_nms(boxes, scores, self.iou_threshold):
            x0, y0, x1, y1 = b * a - b0
            box = Box(float(max(0.0, x0)), float(max(0.0, y0)), float(min(w, x1)), float(min(h, y1)), s)
            if min(box.width, box.height) >= max(1, self.min_size_px):
                faces.append(box)
        return faces


def _rgb(frame: np.ndarray) -> np.ndarray:
    """BGR (or BGRA, or grey) -> RGB, the detector's input order."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2RGB)


def _xyxy(box: Box) -> np.ndarray:
    return np.array([box.x0, box.y0, box.x1, box.y1])
