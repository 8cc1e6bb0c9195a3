"""Shared fixtures: FER2013 location (skip with a reason where absent), fetched assets, tiny datasets."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FER = Path(os.environ.get("EMOTION_EDGE_FER2013", ROOT.parent / "shared" / "data" / "fer2013"))


@pytest.fixture(scope="session")
def fer_root() -> Path:
    if not (FER / "train").is_dir():
        pytest.skip(f"FER2013 not found at {FER} (set EMOTION_EDGE_FER2013); dataset tests need it")
    return FER


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from edge.assets import asset_path
    from edge.core.errors import UserError

    try:
        return cv2.imread(str(asset_path("astronaut")), cv2.IMREAD_COLOR)
    except UserError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def run(tmp_path):
    """Run a console entry point as a subprocess; returns CompletedProcess."""
    import subprocess
    import sys

    def _run(module: str, *args: str, timeout: float = 300):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, cwd=tmp_path, env=env)

    return _run
