"""Shared fixtures: FER2013 location (skip with a reason where absent), fetched assets, tiny datasets."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FER = Path(os.environ.get("EMOTION_EDGE_FER2013", ROOT.parent / "shared" / "data" / "fer2013"))


@pytest.fixture(autouse=True)
def _no_daemon_left_behind():
    """A test that fails half-way must not leave its daemon running into the next tests."""
    from tests.support.daemon import RUNNING

    yield
    while RUNNING:
        d = RUNNING.pop()
        if d._proc is not None and d._proc.poll() is None:
            d.proc.kill()
            d.proc.communicate(timeout=10)


@pytest.fixture(scope="session")
def fer_root() -> Path:
    if not (FER / "train").is_dir():
        pytest.skip(f"FER2013 not found at {FER} (set EMOTION_EDGE_FER2013); dataset tests need it")
    return FER


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from edge.assets import demo_face_image
    from edge.core.errors import UserError

    try:
        return demo_face_image()
    except UserError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def run(tmp_path):
    """Run a console entry point as a subprocess; returns CompletedProcess."""
    import subprocess
    import sys

    def _run(module: str, *args: str, timeout: float = 300):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run(
            [sys.executable, "-m", module, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env=env,
        )

    return _run


@pytest.fixture(scope="session")
def edge_models(request) -> tuple[Path, str]:
    """(models dir, model name) for daemon tests: the shipped default model, or the smoke suite's if none ships."""
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    shipped = Manifest(models_dir())
    if shipped.default_model:
        return models_dir(), shipped.default_model
    base, _ = request.getfixturevalue("suite")
    models = base / "models"
    for sub in ("detectors", "assets"):
        if not (models / sub).exists():
            (models / sub).symlink_to(models_dir() / sub)
    return models, "binary-scratch"


def tight_crop(img, box, cut):
    """The face box shrunk by `cut` of its size on every side: a close-up cut by the frame's edges."""
    w, h = box.x1 - box.x0, box.y1 - box.y0
    return img[int(box.y0 + cut * h) : int(box.y1 - cut * h), int(box.x0 + cut * w) : int(box.x1 - cut * w)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="session")
def blink_clip(tmp_path_factory, astronaut) -> Path:
    """640x480 @30 fps: a face for 12 frames, none for 12, repeated (each cycle -> appear + leave events)."""
    head = cv2.resize(astronaut[20:260, 110:350], (220, 220))
    frames = []
    for cycle in range(10):
        x = 60 + 180 * (cycle % 3)
        for i in range(24):
            f = np.full((480, 640, 3), 90, np.uint8)
            if i < 12:
                f[120:340, x : x + 220] = head
            frames.append(f)
    return write_clip(tmp_path_factory.mktemp("clips") / "blink.avi", frames)


@pytest.fixture(scope="session")
def suite(fer_root, tmp_path_factory):
    """`emotion-trainer suite --smoke` for one scratch and one resnet spec (pre-training included)."""
    import subprocess
    import sys

    pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
    base = tmp_path_factory.mktemp("suite")
    cmd = [
        sys.executable,
        "-m",
        "trainer",
        "suite",
        str(fer_root),
        "--smoke",
        "--specs",
        "binary-scratch,multiclass3-resnet",
        "--runs",
        str(base / "runs"),
        "--models",
        str(base / "models"),
        "--cache",
        str(base / "cache"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, proc.stdout
