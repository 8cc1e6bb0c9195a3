"""How a shipped model holds up under what real cameras do to a face, measured (the issue's "robustness to real
cameras": blur, noise, JPEG, lighting, small faces, head tilt, detector-box jitter).

Each corruption is applied to the face image as it is read (before the device's preprocessing, as a camera would
do it), at three fixed severities, and the int8 model runs through the device's classifier with its manifest's
test-time augmentation and calibration: the same faces and path as `emotion-trainer evaluate`, so the clean row
equals the manifest's accuracy. Draws (noise fields, shift directions) come from a generator seeded by the image's
index, so a run is repeatable and every model sees the same corrupted faces. Severities are in the face's own
units (sigma as a fraction of its side, shifts as a fraction of its side), so 48-px FER2013 crops and larger
photo crops get the same effect.

Not measured here: colour casts (the shipped models read luma only) and occlusion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.classify.tflite import TFLiteClassifier
from edge.core.errors import UserError
from edge.core.manifest import Manifest
from edge.core.metrics import evaluate_probs
from edge.core.preprocess import PreprocessSpec, preprocess_face

from .augment import gaussian_blur, jpeg_recompress
from .dataset import DataOptions, scan


def _blur(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return gaussian_blur(img, level * max(img.shape[:2]))


def _noise(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    field = rng.standard_normal(img.shape[:2], dtype=np.float32) * np.float32(level)
    if img.ndim == 3:  # one field for all channels: grey stays grey, as sensor luma noise
        field = field[:, :, None]
    return np.clip(img.astype(np.float32) + field, 0, 255).round().astype(np.uint8)


def _jpeg(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return jpeg_recompress(img, int(level))


def _small(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    side = int(level)
    if max(h, w) <= side:
        return img
    scale = side / max(h, w)
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _gain(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img.astype(np.float32) * np.float32(level), 0, 255).round().astype(np.uint8)


def _contrast(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    f = img.astype(np.float32)
    mean = f.mean()
    return np.clip((f - mean) * np.float32(level) + mean, 0, 255).round().astype(np.uint8)


def _affine(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]  # replicated at the border: what preprocess_face does where a box leaves the frame
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(img.shape)


def _rotate(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return _affine(img, cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), sign * level, 1.0))


def _shift(img: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    angle = rng.uniform(0.0, 2.0 * np.pi)
    d = level * max(h, w)
    return _affine(img, np.array([[1.0, 0.0, d * np.cos(angle)], [0.0, 1.0, d * np.sin(angle)]]))


@dataclass(frozen=True)
class Corruption:
    name: str
    what: str  # what the level means, for the table
    levels: tuple[float, float, float]  # severities 1, 2, 3
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


CORRUPTIONS: tuple[Corruption, ...] = (
    Corruption("blur", "Gaussian sigma, fraction of the face side (focus, motion)", (0.01, 0.02, 0.03), _blur),
    Corruption("noise", "Gaussian sensor noise, sigma in grey levels (low light, cheap sensors)", (8, 16, 32), _noise),
    Corruption("jpeg", "JPEG quality (streams, snapshots)", (40, 20, 10), _jpeg),
    Corruption("small", "face side in pixels before upscaling (a face far from the camera)", (32, 24, 16), _small),
    Corruption("dark", "exposure gain (under-exposed)", (0.5, 0.3, 0.15), _gain),
    Corruption("bright", "exposure gain, clipped at white (over-exposed, backlight)", (1.5, 2.0, 3.0), _gain),
    Corruption("contrast", "contrast about the face's mean (haze, flat light)", (0.6, 0.4, 0.2), _contrast),
    Corruption("tilt", "in-plane rotation in degrees, either way (head tilt, camera roll)", (10, 20, 30), _rotate),
    Corruption("shift", "detector-box shift, fraction of the face side, any direction", (0.05, 0.1, 0.15), _shift),
)
NAMES = tuple(c.name for c in CORRUPTIONS)


def corruption(name: str) -> Corruption:
    for c in CORRUPTIONS:
        if c.name == name:
            return c
    raise UserError(f"unknown corruption {name!r}; fix: one of {', '.join(NAMES)}")


def corrupt(img: np.ndarray, name: str, severity: int, index: int) -> np.ndarray:
    """`img` (uint8, HxW or HxWxC) with corruption `name` at `severity` 1-3; draws seeded by `index` (the image's
    place in the split) and the corruption, so every model and every run sees the same faces."""
    c = corruption(name)
    if severity not in (1, 2, 3):
        raise UserError(f"severity {severity} is not 1, 2 or 3")
    rng = np.random.default_rng([index, NAMES.index(name), severity])
    return c.apply(img, float(c.levels[severity - 1]), rng)


Predict = Callable[[list[np.ndarray]], np.ndarray]  # face images (uint8 BGR, any size) -> probabilities


def device_predict(clf: TFLiteClassifier, spec: PreprocessSpec) -> Predict:
    """Faces (the image is the crop) through the device's preprocessing with `spec` and the classifier `clf`."""

    def predict(faces: list[np.ndarray]) -> np.ndarray:
        return np.stack([clf.probabilities(preprocess_face(f, None, spec)) for f in faces])

    return predict


def shipped_model(name: str, models_dir: str | Path) -> tuple[Predict, tuple[str, ...], dict]:
    """Model `name` from the manifest, int8 through the device's classifier (its test-time augmentation and
    calibration): (predict, labels, what to record)."""
    entry = Manifest(models_dir).entry(name)
    clf = TFLiteClassifier(entry, "int8", num_threads=2)
    who = {"model": name, "version": entry.version, "variant": "int8", "tta": clf.tta}
    return device_predict(clf, entry.preprocess), entry.labels, who


def measure(
    predict: Predict,
    labels: tuple[str, ...],
    data: DataOptions,
    split: str = "test",
    only: tuple[str, ...] = NAMES,
) -> dict:
    """Accuracy and macro-F1 of `predict` on `split` (restricted to `labels`), clean and under each corruption in
    `only` at severities 1-3. Crops only: the image is the face (`--faces cropped`)."""
    return measure_each({"": predict}, labels, data, split, only)[""]


def measure_each(
    predicts: dict[str, Predict],
    labels: tuple[str, ...],
    data: DataOptions,
    split: str = "test",
    only: tuple[str, ...] = NAMES,
) -> dict[str, dict]:
    """`measure` for several predictors on the same faces: the split is read, and each corrupted set made, once."""
    if data.faces != "cropped":
        raise UserError(
            "robustness reads face crops (the image is the face, as FER2013); fix: leave --faces at 'cropped'"
        )
    for n in only:
        corruption(n)
    images, y, skipped = [], [], 0
    for path, label in scan(Path(data.root), split, labels, data.mapping, data.per_class_limit):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # as load_split reads them: grey files as three equal channels
        if img is None:
            if not data.skip_bad:
                raise UserError(f"cannot read image {path}; fix: delete or replace it, or pass --skip-bad")
            skipped += 1
            continue
        images.append(img)
        y.append(label)
    if not images:
        raise UserError(f"no readable images in {data.root}/{split}; fix: check the folder")
    truth = np.asarray(y, np.int32)

    def score(faces: list[np.ndarray]) -> dict[str, dict]:
        out = {}
        for key, predict in predicts.items():
            m = evaluate_probs(predict(faces), truth, labels)
            out[key] = {"accuracy": round(float(m["accuracy"]), 4), "macro_f1": round(float(m["macro"]["f1"]), 4)}
        return out

    clean = score(images)
    rows: dict[str, list[dict]] = {key: [] for key in predicts}
    for n in only:
        c = corruption(n)
        levels: dict[str, list[dict]] = {key: [] for key in predicts}
        for s in (1, 2, 3):
            scores = score([corrupt(img, n, s, i) for i, img in enumerate(images)])
            for key in predicts:
                levels[key].append({"severity": s, "level": c.levels[s - 1], **scores[key]})
        for key in predicts:
            rows[key].append({"corruption": n, "what": c.what, "levels": levels[key]})
    results = {}
    for key in predicts:
        accs = [lv["accuracy"] for r in rows[key] for lv in r["levels"]]
        results[key] = {
            "split": split,
            "data": str(Path(data.root).resolve()),
            "labels": list(labels),
            "n": len(images),
            "skipped": skipped,
            "per_class_limit": data.per_class_limit or None,
            "clean": clean[key],
            "corruptions": rows[key],
            "mean_corrupted_accuracy": round(float(np.mean(accs)), 4) if accs else None,
        }
    return results


def format_table(r: dict) -> str:
    width = max(len("clean"), *(len(row["corruption"]) for row in r["corruptions"]))
    lines = [
        f"{r['title']} on {r['split']}, n={r['n']}: accuracy / macro-F1",
        f"{'':<{width}}  {'severity 1':>15}  {'severity 2':>15}  {'severity 3':>15}  levels",
        f"{'clean':<{width}}  {r['clean']['accuracy']:.4f} / {r['clean']['macro_f1']:.4f}",
    ]
    for row in r["corruptions"]:
        cells = "  ".join(f"{lv['accuracy']:.4f} / {lv['macro_f1']:.4f}" for lv in row["levels"])
        levels = ", ".join(f"{lv['level']:g}" for lv in row["levels"])
        lines.append(f"{row['corruption']:<{width}}  {cells}  {levels}: {row['what']}")
    if r["mean_corrupted_accuracy"] is not None:
        lines.append(f"mean accuracy over the corrupted sets: {r['mean_corrupted_accuracy']:.4f}")
    return "\n".join(lines)


def write_report(r: dict, models_dir: str | Path, stem: str) -> Path:
    path = Path(models_dir) / "reports" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r, indent=2) + "\n")
    return path
