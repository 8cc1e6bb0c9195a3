"""The built-in demo clip: scikit-image's public-domain astronaut photo, moving, with one to three faces.

Made by the project itself (by `emotion-edge fetch`, and on first use), so the
daemon has a default source on any machine without a camera and no dataset image is shipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from edge.assets import demo_face_image
from edge.core.errors import UserError
from edge.core.paths import assets_dir

CLIP_NAME = "demo-astronaut.avi"


def demo_clip_path() -> Path:
    path = assets_dir() / CLIP_NAME
    if not path.is_file():
        make_demo_clip(path)
    return path


def make_demo_clip(
    path: Path, seconds: float = 12.0, fps: int = 30, size: tuple[int, int] = (640, 480), max_faces: int = 3
) -> Path:
    """Write an MJPG AVI: faces enter one by one (1, then 2, then 3), drift and one turns into its mirror image."""
    src = demo_face_image()
    head = cv2.resize(src[20:260, 110:350], (200, 200), interpolation=cv2.INTER_AREA)  # face with some context
    w, h = size
    n = int(seconds * fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise UserError(f"OpenCV cannot write MJPG video to {tmp}; fix: check the folder is writable")
    slots = [(20, 40), (220, 250), (430, 60)]
    for i in range(n):
        frame = np.full((h, w, 3), 70, np.uint8)
        frame[:, :, 1] = 80 + (i % 60)  # a slowly changing background
        visible = min(max_faces, 1 + i * max_faces // n)
        for k in range(visible):
            x0, y0 = slots[k]
            dx = int(15 * math.sin(2 * math.pi * i / (fps * 4) + k))
            dy = int(10 * math.cos(2 * math.pi * i / (fps * 5) + k))
            img = cv2.flip(head, 1) if k == 1 else head
            x, y = max(0, min(w - 200, x0 + dx)), max(0, min(h - 200, y0 + dy))
            frame[y : y + 200, x : x + 200] = img
        writer.write(frame)
    writer.release()
    tmp.replace(path)
    return path
