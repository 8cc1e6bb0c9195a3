"""What combining finished runs would buy, on val: each run alone, the mean of their probabilities (an ensemble,
what distillation from them can at best pass on) and the mean of their weights (a "soup", which costs nothing at
inference). Float Keras models, without and with mirror averaging; val only, since it informs choices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.preprocess import PreprocessSpec

from .dataset import DataOptions


def _runs(dirs: list[Path], labels: tuple[str, ...]) -> list[dict]:
    infos = []
    for d in dirs:
        if not (d / "model.keras").is_file() or not (d / "train.json").is_file():
            raise UserError(f"{d} has no model.keras and train.json; fix: pass finished run folders (RUNS/<spec>)")
        info = json.loads((d / "train.json").read_text())
        if tuple(info["labels"]) != labels:
            raise UserError(f"{d} predicts {info['labels']}, not {list(labels)}; fix: pass runs of the same spec")
        infos.append(info)
    if len({json.dumps(i["preprocess"], sort_keys=True) for i in infos}) > 1:
        raise UserError("the runs preprocess faces differently; fix: compare runs made with the same preprocessing")
    return infos


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(1) == y).mean())


def compare(dirs: list[Path], labels: tuple[str, ...], data: DataOptions) -> list[tuple[str, float, float]]:
    """(what, val accuracy, val accuracy with mirror averaging) for each run, their ensemble and their soup."""
    import keras

    infos = _runs(dirs, labels)
    val = data.load("val", labels, PreprocessSpec.from_dict(infos[0]["preprocess"]))
    mirrored = val.x[:, :, ::-1]
    models = [keras.models.load_model(str(d / "model.keras"), compile=False) for d in dirs]

    def both(model) -> tuple[np.ndarray, np.ndarray]:
        plain = model.predict(val.x, batch_size=256, verbose=0)
        return plain, (plain + model.predict(mirrored, batch_size=256, verbose=0)) / 2.0

    rows, plain, mirror = [], [], []
    for d, model in zip(dirs, models, strict=True):
        p, m = both(model)
        plain.append(p)
        mirror.append(m)
        rows.append((str(d), _accuracy(p, val.y), _accuracy(m, val.y)))
    n = len(dirs)
    ens = (np.mean(plain, axis=0), np.mean(mirror, axis=0))
    rows.append((f"ensemble (mean probability, {n} runs)", _accuracy(ens[0], val.y), _accuracy(ens[1], val.y)))
    shapes = [[w.shape for w in model.get_weights()] for model in models]
    if all(s == shapes[0] for s in shapes):
        weights = [model.get_weights() for model in models]
        models[0].set_weights([np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*weights, strict=True)])
        p, m = both(models[0])
        rows.append((f"weight average (soup, {n} runs)", _accuracy(p, val.y), _accuracy(m, val.y)))
    return rows
