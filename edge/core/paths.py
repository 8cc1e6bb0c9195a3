"""Where models and fetched assets live.

$EMOTION_EDGE_MODELS, the checkout's models/, or PREFIX/models beside an installed venv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import UserError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"}
)  # what cv2.imread reads here


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """['feliz=happy', ...] -> {'feliz': 'happy'}: folder name -> label."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"label mapping {pair!r} is not FOLDER=LABEL; fix: e.g. --map feliz=happy")
        src, dst = (s.strip() for s in pair.split("=", 1))
        out[src] = dst
    return out


def models_dir() -> Path:
    """The first that exists of: $EMOTION_EDGE_MODELS; the source checkout's models/ (editable installs);
    PREFIX/models for a venv at PREFIX/venv (deploy/install.sh's layout, so the installed CLI finds its
    models without the unit's environment). Falls back to the checkout path, which error messages name."""
    env = os.environ.get("EMOTION_EDGE_MODELS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "models"
    if (checkout / "manifest.json").is_file():
        return checkout
    installed = Path(sys.prefix).resolve().parent / "models"
    if (installed / "manifest.json").is_file():
        return installed
    return checkout


def detectors_dir() -> Path:
    return models_dir() / "detectors"


def assets_dir() -> Path:
    return models_dir() / "assets"
