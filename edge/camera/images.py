"""A folder of images as a camera (sorted by name, optionally looped)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.imageio import read_image
from edge.core.paths import IMAGE_SUFFIXES

from .base import CameraError
from .pacing import Pacer

log = logging.getLogger(__name__)


class ImageFolderSource:
    def __init__(self, folder: str, fps: float = 5.0, loop: bool = True, realtime: bool = True):
        self.name = Path(folder).name
        self.folder = Path(folder)
        self.loop = loop
        self.pacer = Pacer(fps, realtime)
        self.files: list[Path] = []
        self.i = 0
        self.skipped = 0  # unreadable files skipped (each logged once)
        self._bad: set[Path] = set()

    def open(self) -> None:
        if not self.folder.is_dir():
            raise UserError(f"image folder {self.folder} not found; fix: correct camera.path")
        self.files = sorted(f for f in self.folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not self.files:
            raise UserError(f"image folder {self.folder} holds no images; fix: add .jpg/.png files")
        self.i = 0

    def read(self) -> np.ndarray | None:
        self.pacer.wait()
        for _ in range(len(self.files) + 1):  # at most one pass: a folder of only bad files is a camera fault
            if self.i >= len(self.files):
                if not self.loop:
                    return None
                self.i = 0
            path = self.files[self.i]
            self.i += 1
            frame, why = read_image(path)
            if frame is not None:
                return frame
            self.skipped += 1
            if path not in self._bad:
                self._bad.add(path)
                log.warning("camera %s: skipping image %s: %s", self.name, path.name, why)
        raise CameraError(f"no readable image in {self.folder}")

    def close(self) -> None:
        pass
