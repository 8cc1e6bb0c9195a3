"""Reading one image file safely: regular files only, a decoded-size limit, never a cv2 exception."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = (
    40_000_000  # 40 MP: larger than any camera frame we handle; a decoded 20000x20000 PNG would be 1.2 GB
)


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding the pixels; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
    return None


def read_image(path: Path) -> tuple[np.ndarray | None, str]:
    """(BGR image, "") or (None, why it was skipped). Never blocks on a FIFO or device, never raises."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, f"cannot stat it ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"cannot read it ({exc.strerror})"
    size = _header_size(data[:65536])
    if size and size[0] * size[1] > MAX_IMAGE_PIXELS:
        return None, f"{size[0]}x{size[1]} is larger than {MAX_IMAGE_PIXELS // 1_000_000} MP"
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        return None, f"OpenCV cannot decode it ({str(exc).strip().splitlines()[-1][:80]})"
    if img is None:
        return None, "corrupt or not an image"
    if img.shape[0] * img.shape[1] > MAX_IMAGE_PIXELS:
        return None, f"{img.shape[1]}x{img.shape[0]} is larger than {MAX_IMAGE_PIXELS // 1_000_000} MP"
    return img, ""
