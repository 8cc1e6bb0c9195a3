"""Where models and fetched assets live: $EMOTION_EDGE_MODELS, else the checkout's models/ folder."""

from __future__ import annotations

import os
from pathlib import Path


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})  # what cv2.imread reads here


def models_dir() -> Path:
    env = os.environ.get("EMOTION_EDGE_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def detectors_dir() -> Path:
    return models_dir() / "detectors"


def assets_dir() -> Path:
    return models_dir() / "assets"
