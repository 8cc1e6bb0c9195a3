"""Evaluate the EXPORTED models through the device's own classifier on a held-out split."""

from __future__ import annotations

import csv
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from edge.classify.tflite import TFLiteClassifier
from edge.core.manifest import Manifest
from edge.core.runtime import runtime_name

from .dataset import load_split
from .metrics import evaluate_probs

log = logging.getLogger(__name__)


def predict_all(clf: TFLiteClassifier, x: np.ndarray) -> np.ndarray:
    return np.stack([clf.probabilities(face) for face in x])


def choose_tta(manifest: Manifest, name: str, data_root, faces, mapping, cache_dir, per_class_limit) -> str:
    """Pick test-time augmentation on the VAL split (never test): mirror-averaging only if it helps int8 accuracy."""
    entry = manifest.entry(name)
    val = load_split(data_root, "val", entry.labels, entry.preprocess, faces, mapping, per_class_limit, True, cache_dir)
    scores = {}
    for choice in ("none", "flip"):
        manifest.update(name, {"tta": choice})
        clf = TFLiteClassifier(manifest.entry(name), "int8", num_threads=2)
        scores[choice] = float((predict_all(clf, val.x).argmax(1) == val.y).mean())
    best = "flip" if scores["flip"] > scores["none"] + 0.002 else "none"
    manifest.update(name, {"tta": best, "tta_selection": {"split": "val", "int8_accuracy": {k: round(v, 4) for k, v in scores.items()}}})
    log.info("%s: test-time augmentation %r chosen on val %s", name, best, scores)
    return best


def _rounded(m: dict) -> dict:
    def r(v):
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {k: r(x) for k, x in v.items()}
        return v
    return r(m)


def evaluate(name: str, models_dir: str | Path, data_root: str | Path, split: str = "test", faces: str = "cropped",
             mapping: dict | None = None, cache_dir: Path | None = None, per_class_limit: int = 0,
             latency_runs: int = 200, run_dir: Path | None = None, tta: str = "auto") -> dict:
    """Metrics for every variant, int8-vs-float agreement and latency; written to the manifest and reports/NAME.json."""
    models_dir = Path(models_dir)
    manifest = Manifest(models_dir)
    if tta == "auto":
        choose_tta(manifest, name, data_root, faces, mapping, cache_dir, per_class_limit)
    entry = manifest.entry(name)
    data = load_split(data_root, split, entry.labels, entry.preprocess, faces, mapping, per_class_limit, True, cache_dir)
    results, preds, latency = {}, {}, {}
    for variant in entry.data["variants"]:
        clf = TFLiteClassifier(entry, variant, num_threads=2)
        probs = predict_all(clf, data.x)
        preds[variant] = probs.argmax(1)
        results[variant] = _rounded(evaluate_probs(probs, data.y, entry.labels))
        latency[variant] = TFLiteClassifier(entry, variant, num_threads=1).latency_ms(data.x[0], latency_runs)
        log.info("%s %s: accuracy %.4f macro-F1 %.4f", name, variant, results[variant]["accuracy"], results[variant]["macro"]["f1"])
    agreement = float((preds["int8"] == preds["float32"]).mean()) if {"int8", "float32"} <= set(preds) else None
    metrics = {
        "split": split, "data": str(Path(data_root).resolve()), "n": int(len(data.y)), "counts": data.counts(),
        "per_class_limit": per_class_limit or None, **results,
        "int8_float_agreement": round(agreement, 4) if agreement is not None else None,
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    lat = {"threads": 1, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
           "runtime": runtime_name(), **latency}
    manifest.update(name, {"metrics": metrics, "latency_ms": lat})
    report = {"model": name, "metrics": metrics, "latency_ms": lat, "history": _history(run_dir)}
    reports = models_dir / "reports"
    reports.mkdir(exist_ok=True)
    (reports / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _history(run_dir: Path | None) -> list[dict]:
    """Per-epoch train/val accuracy and loss from the run's CSVLogger file (for the report's curves)."""
    path = Path(run_dir) / "history.csv" if run_dir else None
    if not path or not path.is_file():
        return []
    with open(path) as f:
        return [{k: (round(float(v), 5) if k != "epoch" else int(v)) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
