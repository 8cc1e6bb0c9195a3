"""The shipped exposure normalisation against its alternatives, scored (`emotion-trainer exposure`): why the models
stretch only the faces outside the training faces' range (edge.core.preprocess: normalize_exposure) rather than
equalise or standardise every face, and how equalised this copy of FER2013 already is.

The int8 model runs through the device's classifier without TTA or calibration, as `evaluate` scores the
normalisation when it chooses it (trainer/evaluate.py: choose_exposure); each alternative acts on the grey face at
the model's input, where the shipped one acts. Clean faces only: the corrupted sets are `robustness`'s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.classify.tflite import TFLiteClassifier
from edge.core.errors import UserError
from edge.core.manifest import ModelEntry
from edge.core.preprocess import preprocess_face

from .dataset import DataOptions, scan
from .evaluate import exposure_bounds
from .robustness import Predict, device_predict, measure_each

Transform = Callable[[np.ndarray], np.ndarray]  # grey uint8 face at the model's input -> the same shape


def alternatives(train_faces: np.ndarray) -> dict[str, tuple[Transform, str]]:
    """The two normalisations the device does not have, each with what it does: `equalize`, cv2.equalizeHist on
    every face; `standardize`, every face mapped linearly to the median mean and median standard deviation of
    `train_faces` (preprocessed uint8 NHWC, exposure off)."""
    f = train_faces.reshape(len(train_faces), -1).astype(np.float32)
    mean, std = float(np.median(f.mean(axis=1))), float(np.median(f.std(axis=1)))

    def standardize(g: np.ndarray) -> np.ndarray:
        x = g.astype(np.float32)
        out = (x - x.mean()) * np.float32(std / max(float(x.std()), 1.0)) + np.float32(mean)
        return np.clip(out, 0.0, 255.0).round().astype(np.uint8)

    return {
        "equalize": (cv2.equalizeHist, "cv2.equalizeHist on every face"),
        "standardize": (standardize, f"every face to the training median mean {mean:.1f} and std {std:.1f}"),
    }


def _predict(clf: TFLiteClassifier, entry: ModelEntry, transform: Transform) -> Predict:
    """The device's preprocessing without exposure normalisation, then `transform` on the grey face in its place."""
    spec = replace(entry.preprocess, exposure=None)

    def predict(faces: list[np.ndarray]) -> np.ndarray:
        out = []
        for face in faces:
            x = preprocess_face(face, None, spec)
            g = transform(np.ascontiguousarray(x[:, :, 0]))
            out.append(clf.probabilities(np.repeat(g[:, :, None], x.shape[2], axis=2)))
        return np.stack(out)

    return predict


def equalized_already(data: DataOptions, labels: tuple[str, ...], split: str) -> dict:
    """How far cv2.equalizeHist moves each face of `split` as read (grey): an equalised face barely moves."""
    moves = []
    for path, _ in scan(Path(data.root), split, labels, data.mapping, data.per_class_limit):
        g = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if g is None:
            continue  # counted by measure_each, which reads the same files
        moves.append(float(np.abs(cv2.equalizeHist(g).astype(np.float32) - g).mean()))
    m = np.asarray(moves)
    return {
        "n": len(m),
        "median_grey_levels": round(float(np.median(m)), 2) if len(m) else None,
        "under_2_grey_levels": int((m < 2.0).sum()),
    }


def compare(entry: ModelEntry, data: DataOptions, split: str = "val") -> dict:
    """Clean accuracy and macro-F1 of `entry`'s int8 model (no TTA, no calibration) on `split` under each
    alternative, with the bounds measured on the train split as `evaluate` measures them."""
    if data.faces != "cropped":
        raise UserError(
            "exposure reads face crops (the image is the face, as FER2013); fix: leave --faces at 'cropped'"
        )
    if entry.preprocess.color != "gray":
        raise UserError(f"{entry.name} reads colour; the exposure alternatives act on grey faces; fix: a grey model")
    off = replace(entry.preprocess, exposure=None)
    train = data.load("train", entry.labels, off).x
    bounds = exposure_bounds(train)
    clf = TFLiteClassifier(entry, "int8", num_threads=2, tta="none", calibration={})
    # off and stretch are the device's own path (edge.core.preprocess), as `evaluate` scored them when it chose
    predicts = {"off": device_predict(clf, off), "stretch": device_predict(clf, replace(off, exposure=bounds))}
    what = {
        "off": "the face as training saw it",
        "stretch": f"only faces outside the training range (shipped; mean {bounds[0]:g}-{bounds[1]:g}, "
        f"std >= {bounds[2]:g})",
    }
    for name, (transform, does) in alternatives(train).items():
        predicts[name], what[name] = _predict(clf, entry, transform), does
    measured = measure_each(predicts, entry.labels, data, split, ())
    first = next(iter(measured.values()))
    return {
        "model": entry.name,
        "version": entry.version,
        "variant": "int8",
        "split": split,
        "n": first["n"],
        "skipped": first["skipped"],
        "bounds": list(bounds),
        "alternatives": {k: {"what": what[k], **measured[k]["clean"]} for k in predicts},
        "equalizehist_moves": equalized_already(data, entry.labels, split),
    }


def format_table(r: dict) -> str:
    width = max(len(k) for k in r["alternatives"])
    lines = [f"{r['model']} {r['version']} int8 (TTA none, no calibration) on {r['split']}, n={r['n']}"]
    for k, a in r["alternatives"].items():
        lines.append(f"{k:<{width}}  {a['accuracy']:.4f} / {a['macro_f1']:.4f}  {a['what']}")
    e = r["equalizehist_moves"]
    lines.append(
        f"cv2.equalizeHist on the {r['split']} faces as read: median change {e['median_grey_levels']} grey levels "
        f"per face; under 2 levels for {e['under_2_grey_levels']} of {e['n']}"
    )
    return "\n".join(lines)
