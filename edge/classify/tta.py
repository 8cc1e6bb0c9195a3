"""Test-time augmentation: the views of a preprocessed face whose probabilities the classifier averages.

One implementation for the device and for `emotion-trainer evaluate`, which chooses a policy on val and
records it in the manifest (`tta`). Policies, cheapest first (each view is one more interpreter pass):

- "none": the face as preprocessed.
- "flip": the face and its mirror image.
- "zoom-flip": the face scaled by 1, ZOOM and 1/ZOOM about its centre (border replicated, as the detector's
  box jitters in size from frame to frame), each with its mirror: six views.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.core.errors import ModelError

POLICIES = ("none", "flip", "zoom-flip")  # cheapest first: evaluate tries them in this order
ZOOM = 1.1


def view_count(policy: str) -> int:
    return {"none": 1, "flip": 2, "zoom-flip": 6}[check(policy)]


def check(policy: str, name: str = "the model") -> str:
    if policy not in POLICIES:
        raise ModelError(
            f"{name} asks for unknown test-time augmentation {policy!r} (known: {', '.join(POLICIES)}); "
            "fix: upgrade emotion-edge or re-evaluate the model"
        )
    return policy


def _zoomed(face: np.ndarray, scale: float) -> np.ndarray:
    h, w = face.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), 0.0, scale)
    out = cv2.warpAffine(face, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(face.shape)  # warpAffine drops a trailing channel axis of 1


def views(face: np.ndarray, policy: str) -> list[np.ndarray]:
    """The views of one (H, W, C) uint8 face under `policy`, the face itself first; each C-contiguous."""
    check(policy)
    scaled = [face] if policy != "zoom-flip" else [face, _zoomed(face, ZOOM), _zoomed(face, 1.0 / ZOOM)]
    if policy != "none":
        scaled = [v for s in scaled for v in (s, s[:, ::-1])]
    return [np.ascontiguousarray(v) for v in scaled]
