"""Face detectors: frame -> face boxes. Chosen by `type`; see make_detector."""

from __future__ import annotations

from .base import Detector

# The detector's `pad` for still images (`emotion-edge analyze`, `emotion-trainer ... --faces detect`): photos are
# often tight crops in which BlazeFace alone misses or cuts the face. Chosen on FER2013 val (PublicTest, the four
# production classes, every face a tight crop): `emotion-edge analyze DIR --score --pad P` (README, *Photos*).
STILL_IMAGE_PAD = 0.25


def make_detector(kind: str = "blazeface-short", **options) -> Detector:
    """Build a detector by type: blazeface-short, blazeface-full, or full-frame (image is already a face)."""
    if kind in ("blazeface-short", "blazeface-full"):
        from .blazeface import BlazeFaceDetector

        return BlazeFaceDetector(variant=kind.split("-")[1], **options)
    if kind == "full-frame":
        if options:
            from edge.core.errors import UserError

            raise UserError(f"the full-frame detector takes no options ({', '.join(options)})")
        from .full_frame import FullFrameDetector

        return FullFrameDetector()
    from edge.core.errors import UserError

    raise UserError(f"unknown detector type {kind!r}; fix: use blazeface-short, blazeface-full or full-frame")
