"""A folder of images as a camera (sorted by name, optionally looped)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import UserError
from edge.core.paths import IMAGE_SUFFIXES

from .pacing import Pacer


class ImageFolderSource:
    def __init__(self, folder: str, fps: float = 5.0, loop: bool = True, realtime: bool = True):
        self.name = Path(folder).name
        self.folder = Path(folder)
        self.loop = loop
        self.pacer = Pacer(fps, realtime)
        self.files: list[Path] = []
        self.i = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise UserError(f"image folder {self.folder} not found; fix: correct camera.path")
        self.files = sorted(f for f in self.folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise UserError(f"image folder {self.folder} holds no images; fix: add .jpg/.png files")
        self.i = 0

    def read(self) -> np.ndarray | None:
        self.pacer.wait()
        while True:
            if self.i >= len(self.files):
                if not self.loop:
                    return None
                self.i = 0
            path = self.files[self.i]
            self.i += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            raise UserError(f"cannot read image {path}; it is corrupt or not an image")

    def close(self) -> None:
        pass
