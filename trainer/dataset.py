"""Folder-per-class datasets -> uint8 model inputs, built with the device's own preprocessing.

A dataset root either holds `train/`, `val/`, `test/` (each folder-per-class, like FER2013 here) or is
itself folder-per-class, in which case images are split 80/10/10 by a hash of their path. Images are
already-cropped faces (`faces="cropped"`) or raw photos (`faces="detect"`), where the device's
BlazeFace detector finds the face and the shared preprocessing crops it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import UserError
from edge.core.paths import IMAGE_SUFFIXES
from edge.core.preprocess import PreprocessSpec, preprocess_face
from edge.detect import STILL_IMAGE_PAD, make_detector

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    x: np.ndarray  # (N, H, W, C) uint8, exactly what the device feeds the model
    y: np.ndarray  # (N,) int32 indices into labels
    labels: tuple[str, ...]
    paths: list[str]
    skipped: dict[str, int]

    def counts(self) -> dict[str, int]:
        c = Counter(self.y.tolist())
        return {label: int(c.get(i, 0)) for i, label in enumerate(self.labels)}


def _split_of(rel: str) -> str:
    """Deterministic 80/10/10 split for datasets that come without split folders."""
    h = zlib.crc32(rel.encode()) % 10
    return "test" if h == 0 else "val" if h == 1 else "train"


def scan(
    root: Path, split: str, labels: tuple[str, ...], mapping: dict[str, str] | None = None, per_class_limit: int = 0
) -> list[tuple[Path, int]]:
    """(image path, label index) pairs of one split, sorted; errors name the missing piece."""
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise UserError(f"classes {list(labels)} must be at least two distinct labels; fix: e.g. --classes happy,sad")
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist; fix: pass the folder holding one sub-folder per class")
    has_splits = (root / "train").is_dir()
    base = root / split if has_splits else root
    if not base.is_dir():
        raise UserError(f"dataset {root} has no {split}/ folder; fix: add it, or use a plain folder-per-class dataset")
    mapping = mapping or {}
    items: dict[int, list[Path]] = {i: [] for i in range(len(labels))}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        label = mapping.get(folder.name, folder.name)
        if label not in labels:
            continue
        for f in sorted(folder.rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and (has_splits or _split_of(str(f.relative_to(root))) == split):
                items[labels.index(label)].append(f)
    out: list[tuple[Path, int]] = []
    for i, files in items.items():
        if not files and not has_splits and (base / labels[i]).is_dir():
            n = sum(1 for f in (base / labels[i]).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            raise UserError(
                f"class {labels[i]!r} has {n} image(s) in {base / labels[i]}, but none falls into the {split} "
                f"split (a plain folder is split 80/10/10 by file name); fix: add more images, or give the "
                f"dataset train/, val/ and test/ folders"
            )
        if not files:
            raise UserError(
                f"class {labels[i]!r} has no images in {base}; fix: add a '{labels[i]}' folder "
                f"or map one onto it with --map FOLDER={labels[i]}"
            )
        if per_class_limit:
            files = files[:: max(1, len(files) // per_class_limit)][:per_class_limit]
        out.extend((f, i) for f in files)
    return out


@dataclass(frozen=True)
class DataOptions:
    """Where a dataset is and how to read it: the options every trainer command shares."""

    root: Path
    faces: str = "cropped"  # "cropped": images are face crops; "detect": raw photos through BlazeFace
    mapping: dict[str, str] = field(default_factory=dict)  # class folder -> label
    per_class_limit: int = 0  # 0: every image (smoke runs use SMOKE_PER_CLASS)
    skip_bad: bool = False  # skip unreadable images (counted) instead of stopping
    cache_dir: Path | None = None

    def load(self, split: str, labels: tuple[str, ...], spec: PreprocessSpec) -> Split:
        return load_split(
            self.root,
            split,
            labels,
            spec,
            self.faces,
            self.mapping,
            self.per_class_limit,
            self.skip_bad,
            self.cache_dir,
        )


def _largest_face(detector, img: np.ndarray):
    faces = detector.detect(img)
    return max(faces, key=lambda b: b.width * b.height) if faces else None


def load_split(
    root: str | Path,
    split: str,
    labels: tuple[str, ...],
    spec: PreprocessSpec,
    faces: str = "cropped",
    mapping: dict[str, str] | None = None,
    per_class_limit: int = 0,
    skip_bad: bool = False,
    cache_dir: str | Path | None = None,
    detector_type: str = "blazeface-short",
) -> Split:
    """Read, crop and preprocess one split (cached as .npz keyed by its inputs)."""
    if faces not in ("cropped", "detect"):
        raise UserError(f"faces={faces!r} is not 'cropped' or 'detect'")
    root = Path(root)
    pairs = scan(root, split, labels, mapping, per_class_limit)
    key_src = json.dumps(
        [
            str(root.resolve()),
            split,
            labels,
            spec.to_dict(),
            faces,
            detector_type,
            *([STILL_IMAGE_PAD] if faces == "detect" else []),
            mapping or {},
            [(str(p), p.stat().st_size) for p, _ in pairs],
        ],
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{split}-{key}.npz" if cache_dir else None
    if cache and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return Split(z["x"], z["y"], labels, list(z["paths"]), json.loads(str(z["skipped"])))
    detector = None
    if faces == "detect":
        detector = make_detector(detector_type, pad=STILL_IMAGE_PAD)  # photos: as `emotion-edge analyze` finds faces
    xs, ys, paths = [], [], []
    skipped: Counter[str] = Counter()
    for path, y in pairs:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            if not skip_bad:
                raise UserError(
                    f"cannot read image {path}; fix: delete or replace it, or pass --skip-bad to skip unreadable files"
                )
            skipped["unreadable"] += 1
            continue
        box = None
        if detector is not None:
            box = _largest_face(detector, img)
            if box is None:
                skipped["no_face"] += 1
                continue
        xs.append(preprocess_face(img, box, spec))
        ys.append(y)
        paths.append(str(path))
    if not xs:
        raise UserError(
            f"no usable images in {root}/{split} (skipped: {dict(skipped)}); fix: check the folder and --faces"
        )
    out = Split(np.stack(xs), np.asarray(ys, np.int32), labels, paths, dict(skipped))
    for i, label in enumerate(labels):
        if not (out.y == i).any():
            raise UserError(
                f"class {label!r} has no usable images in {root}/{split} after face detection; fix: add images"
            )
    if cache:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, x=out.x, y=out.y, paths=np.asarray(paths), skipped=json.dumps(out.skipped))
            tmp.replace(cache)
        except OSError as exc:  # the cache only saves time: say so once and go on without it
            log.warning(
                "cannot write the dataset cache %s (%s); continuing without it (fix: a writable --cache)",
                cache.parent,
                exc.strerror,
            )
    log.info("%s/%s: %d images %s, skipped %s", root.name, split, len(out.y), out.counts(), out.skipped)
    return out


def crop_stats(root: str | Path, split: str = "val", limit: int = 400, detector_type: str = "blazeface-short") -> dict:
    """How a detector box relates to already-cropped faces: the margin/offset_y that reproduce the crops.

    The detector runs as the daemon runs it (no `pad`): the margin serves camera frames."""
    detector = make_detector(detector_type)
    base = Path(root) / split if (Path(root) / split).is_dir() else Path(root)
    files = sorted(f for f in base.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    files = files[:: max(1, len(files) // limit)][:limit]
    sides, offsets, missed = [], [], 0
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            continue
        big = cv2.resize(img, (192, 192), interpolation=cv2.INTER_LINEAR)  # small crops are below BlazeFace's scale
        box = _largest_face(detector, big)
        if box is None:
            missed += 1
            continue
        longer = max(box.width, box.height)
        sides.append(longer / 192.0)
        offsets.append((96.0 - (box.y0 + box.y1) / 2.0) / longer)
    if not sides:
        raise UserError(f"the detector found no face in {base}; are these face images?")
    side = float(np.median(sides))
    return {
        "images": len(files),
        "no_face": missed,
        "median_box_side": round(side, 4),
        "margin": round((1.0 / side - 1.0) / 2.0, 3),
        "offset_y": round(float(np.median(offsets)), 3),
    }
