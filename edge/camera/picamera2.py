"""Raspberry Pi camera modules through picamera2 (apt python3-picamera2; imported only when selected)."""

from __future__ import annotations

import logging

import numpy as np

from edge.core.errors import UserError

from .base import CameraError

log = logging.getLogger(__name__)


class Picamera2Source:
    def __init__(self, cfg):
        self.cfg = cfg
        self.name = cfg.name
        self.cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError(
                "camera.type = 'picamera2' needs picamera2; fix: 'sudo apt install python3-picamera2' and "
                "create the venv with --system-site-packages (deploy/install.sh does this)"
            ) from None
        try:
            self.cam = Picamera2()
        except (RuntimeError, IndexError) as exc:
            raise UserError(
                f"no Pi camera found ({exc}); fix: check the ribbon cable and 'rpicam-hello --list-cameras'"
            ) from None
        # RGB888 arrives as B,G,R bytes per pixel — OpenCV's order. Full-range colour (sYCC) is asked for
        # explicitly: the default video configuration would use limited-range Rec.709.
        colour_space = None
        try:
            from libcamera import ColorSpace

            colour_space = ColorSpace.Sycc()
        except ImportError:
            log.warning("libcamera python bindings missing; using picamera2's default colour space")
        kwargs = {
            "main": {"size": (self.cfg.width, self.cfg.height), "format": "RGB888"},
            "controls": {"FrameRate": float(self.cfg.fps)},
        }
        if colour_space is not None:
            kwargs["colour_space"] = colour_space
        self.cam.configure(self.cam.create_video_configuration(**kwargs))
        self.cam.start()

    def read(self) -> np.ndarray | None:
        if self.cam is None:
            raise CameraError("Pi camera is not open")
        try:
            frame = self.cam.capture_array("main")
        except RuntimeError as exc:
            raise CameraError(f"Pi camera capture failed: {exc}") from None
        return np.ascontiguousarray(frame[:, :, :3])

    def close(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            finally:
                self.cam = None
