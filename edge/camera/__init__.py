"""Frame sources, chosen by camera.type; hardware SDKs are imported only by the source that needs them."""

from __future__ import annotations

from .base import CameraError, Capture, Frame, FrameSource


def make_source(cfg) -> FrameSource:
    """Build the FrameSource for a CameraConfig (not yet opened)."""
    t = cfg.type
    if t == "picamera2":
        from .picamera2 import Picamera2Source

        return Picamera2Source(cfg)
    if t == "images":
        from .images import ImageFolderSource

        return ImageFolderSource(cfg.path, cfg.fps, cfg.loop, cfg.realtime)
    if t == "demo":
        from .demo import demo_clip_path
        from .opencv import OpenCVSource

        return OpenCVSource("file", str(demo_clip_path()), cfg, name="demo")
    from .opencv import OpenCVSource

    target = {"file": cfg.path, "stream": cfg.url, "gstreamer": cfg.pipeline}.get(t, cfg.path or cfg.index)
    return OpenCVSource(t, target, cfg)


__all__ = ["CameraError", "Capture", "Frame", "FrameSource", "make_source"]
