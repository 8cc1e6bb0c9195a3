"""Face detectors: frame -> face boxes. Chosen by `type`; see make_detector."""

from __future__ import annotations

from .base import Detector


def make_detector(kind: str = "blazeface-short", **options) -> Detector:
    """Build a detector by type: blazeface-short, blazeface-full, or full-frame (image is already a face)."""
    if kind in ("blazeface-short", "blazeface-full"):
        from .blazeface import BlazeFaceDetector

        return BlazeFaceDetector(variant=kind.split("-")[1], **options)
    if kind == "full-frame":
        from .full_frame import FullFrameDetector

        return FullFrameDetector()
    from edge.core.errors import UserError

    raise UserError(f"unknown detector type {kind!r}; fix: use blazeface-short, blazeface-full or full-frame")
