"""OpenCV sources: USB/V4L2 devices, GStreamer pipelines (Jetson CSI), RTSP/HTTP streams, video files."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import UserError

from .base import CameraError
from .pacing import Pacer

log = logging.getLogger(__name__)

STREAM_TIMEOUT_MS = 5000


def has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


class OpenCVSource:
    def __init__(self, kind: str, target, cfg, name: str | None = None):
        self.kind = kind  # opencv | gstreamer | stream | file
        self.target = target
        self.cfg = cfg
        self.name = name or cfg.name
        self.cap: cv2.VideoCapture | None = None
        self.pacer = Pacer(cfg.fps, cfg.realtime and kind == "file")
        self.frames_read = 0

    def _capture(self):
        if self.kind == "gstreamer":
            if not has_gstreamer():
                raise UserError(
                    "this OpenCV was built without GStreamer, so camera.type = 'gstreamer' cannot work; "
                    "fix: on Jetson use the system OpenCV (apt python3-opencv) in a venv made with "
                    "--system-site-packages, and uninstall opencv-python-headless from it"
                )
            return cv2.VideoCapture(self.target, cv2.CAP_GSTREAMER)
        if self.kind == "opencv":
            cap = (
                cv2.VideoCapture(self.target, cv2.CAP_V4L2)
                if isinstance(self.target, int) or str(self.target).startswith("/dev/")
                else cv2.VideoCapture(self.target)
            )
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we want the newest frame, not a backlog
            return cap
        if self.kind == "file" and not Path(self.target).is_file():
            raise UserError(f"video file {self.target} not found; fix: correct camera.path")
        if self.kind == "stream":
            # Bounded network waits: a server that accepts but never answers fails the attempt (and is retried)
            # instead of holding the reader for FFmpeg's own, much longer, defaults.
            return cv2.VideoCapture(
                str(self.target),
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS],
            )
        return cv2.VideoCapture(str(self.target))

    def open(self) -> None:
        cap = self._capture()
        if not cap.isOpened():
            cap.release()
            if self.kind == "stream":
                raise CameraError(f"stream {self.target} cannot be opened (unreachable?); retrying")
            if self.kind == "file":
                raise UserError(f"video file {self.target} cannot be opened; it is corrupt or its codec is unsupported")
            if self.kind == "opencv":
                raise UserError(
                    f"camera {self.target!r} cannot be opened; fix: check it is plugged in "
                    "(v4l2-ctl --list-devices), camera.index/path, and that the user is in group 'video'"
                )
            raise UserError(f"GStreamer pipeline cannot be opened: {self.target}; fix: test it with gst-launch-1.0")
        self.cap = cap
        if self.kind == "file":
            fps = cap.get(cv2.CAP_PROP_FPS)
            if fps and fps > 0 and self.pacer.period:
                self.pacer.period = 1.0 / fps
            ok, frame = cap.read()  # a corrupt file opens but yields nothing
            if not ok:
                self.close()
                raise UserError(f"video file {self.target} has no readable frames; it is corrupt or empty")
            self._first = frame
        else:
            self._first = None

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            raise CameraError("not open")
        self.pacer.wait()
        if self._first is not None:
            frame, self._first = self._first, None
            self.frames_read += 1
            return frame
        ok, frame = self.cap.read()
        if not ok:
            if self.kind == "file":
                if self.cfg.loop and self.frames_read:
                    self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = self.cap.read()
                if not ok:
                    return None
            else:
                raise CameraError(f"lost the camera/stream {self.target!r}")
        self.frames_read += 1
        return frame

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
