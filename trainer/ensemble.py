"""Combining finished runs. `compare`: what it would buy, on val: each run alone, the mean probabilities of the best
k of them for every k (an ensemble, what `combine` makes and what distillation from them can at best pass on) and the
mean of their weights (a "soup"); float Keras models, accuracy and accuracy + macro-F1, without and with mirror
averaging; val only, since it informs choices. `combine`: the ensemble as one model, exported and judged like any
run."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.metrics import evaluate_probs
from edge.core.preprocess import PreprocessSpec

from .dataset import DataOptions
from .specs import get_spec
from .train import BACKBONE_FILE, HEAD_FILE, write_json


def _pretraining_folder(d: Path) -> bool:
    """A committed pre-training (trainer/pretrained/...): backbone weights, six-class head and train.json, no
    model.keras."""
    return not (d / "model.keras").is_file() and all(
        (d / f).is_file() for f in (BACKBONE_FILE, HEAD_FILE, "train.json")
    )


def _runs(dirs: list[Path], labels: tuple[str, ...], more_ok: bool = False, pretraining_ok: bool = False) -> list[dict]:
    """The runs' train.json, each run predicting `labels` (or, with more_ok, at least them); with pretraining_ok a
    committed pre-training folder counts as a run too."""
    infos = []
    for d in dirs:
        if not (pretraining_ok and _pretraining_folder(d)) and not (
            (d / "model.keras").is_file() and (d / "train.json").is_file()
        ):
            also = " or committed pre-training folders (backbone + head.npz + train.json)" if pretraining_ok else ""
            raise UserError(
                f"{d} has no model.keras and train.json; fix: pass finished run folders (RUNS/<spec>){also}"
            )
        info = json.loads((d / "train.json").read_text())
        if tuple(info["labels"]) != labels and not (more_ok and set(labels) <= set(info["labels"])):
            raise UserError(
                f"{d} predicts {info['labels']}, not {list(labels)}"
                f"{' or more' if more_ok else ''}; fix: pass runs of the same spec"
                f"{' or of a spec with more classes' if more_ok else ''}"
            )
        infos.append(info)
    if len({json.dumps(i["preprocess"], sort_keys=True) for i in infos}) > 1:
        raise UserError("the runs preprocess faces differently; fix: compare runs made with the same preprocessing")
    return infos


def _not_combinable(info: dict) -> str | None:
    """Why `combine` refuses a run (None when it takes it): a refit, or a run cut before its schedule ended, is no
    run that its command alone reproduces."""
    if info.get("refit"):
        return "a refit"
    if not info.get("complete", True):
        return "cut before its schedule ended"
    return None


Row = tuple[str, float, float, float, float]  # what; val accuracy, accuracy + macro-F1: plain, mirrored


def _row(what: str, plain: np.ndarray, mirror: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> Row:
    """Accuracy and the judge's val score (accuracy + macro-F1, as `evaluate` ranks candidates), without and with
    mirror averaging."""
    a, b = evaluate_probs(plain, y, labels), evaluate_probs(mirror, y, labels)
    return (
        what,
        float(a["accuracy"]),
        float(b["accuracy"]),
        float(a["accuracy"] + a["macro"]["f1"]),
        float(b["accuracy"] + b["macro"]["f1"]),
    )


def compare(dirs: list[Path], labels: tuple[str, ...], data: DataOptions) -> list[Row]:
    """For each run (#1, #2, .. in the order given), then for the mean probability of the k runs best by their own
    plain val score (k = 2 .. all, ties kept in the order given; only runs `combine` takes, a cut run or a refit is
    marked and left out) and for their soup: val accuracy and accuracy + macro-F1, plain and mirrored. A run of
    more classes, or a committed pre-training folder (marked), is restricted to `labels` as `combine` restricts
    it."""
    import keras

    infos = _runs(dirs, labels, more_ok=True, pretraining_ok=True)
    val = data.load("val", labels, PreprocessSpec.from_dict(infos[0]["preprocess"]))
    mirrored = val.x[:, :, ::-1]
    folders = [_pretraining_folder(d) for d in dirs]
    models = []
    for d, info, folder in zip(dirs, infos, folders, strict=True):
        if folder:
            model = pretrained_network(d, info)
        else:
            model = keras.models.load_model(str(d / "model.keras"), compile=False)
        same = tuple(info["labels"]) == labels
        models.append(model if same else restricted(model, info["labels"], labels, d.parent.name))

    def both(model) -> tuple[np.ndarray, np.ndarray]:
        plain = model.predict(val.x, batch_size=256, verbose=0)
        return plain, (plain + model.predict(mirrored, batch_size=256, verbose=0)) / 2.0

    rows: list[Row] = []
    probs: list[tuple[np.ndarray, np.ndarray]] = []
    whys = [_not_combinable(info) for info in infos]
    for i, (d, model, why, folder) in enumerate(zip(dirs, models, whys, folders, strict=True)):
        p, m = both(model)
        probs.append((p, m))
        what = f"#{i + 1} {d}" + (" (a pre-training folder)" if folder else "")
        rows.append(_row(what + (f" ({why}: not in the ensembles)" if why else ""), p, m, val.y, labels))
    ok = [i for i, why in enumerate(whys) if why is None]
    best = sorted(ok, key=lambda i: -rows[i][3])
    for k in range(2, len(ok) + 1):
        chosen = best[:k]
        what = f"ensemble (mean probability) of the best {k}: " + " ".join(f"#{i + 1}" for i in sorted(chosen))
        p, m = (np.mean([probs[i][j] for i in chosen], axis=0) for j in (0, 1))
        rows.append(_row(what if k < len(ok) else f"ensemble (mean probability, {k} runs)", p, m, val.y, labels))
    shapes = [[w.shape for w in model.get_weights()] for model in models]
    if all(s == shapes[0] for s in shapes) and all(tuple(i["labels"]) == labels for i in infos):
        weights = [model.get_weights() for model in models]
        models[0].set_weights([np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*weights, strict=True)])
        p, m = both(models[0])
        rows.append(_row(f"weight average (soup, {len(dirs)} runs)", p, m, val.y, labels))
    return rows


def pretrained_network(d: Path, info: dict):
    """The network a committed pre-training folder describes: the fer-resnet backbone at its recorded width with
    its weights, and its softmax head (what a fine-tune from it starts from before restriction)."""
    from edge.core.preprocess import PreprocessSpec

    from .specs import pretrain_spec
    from .train import build_model, init_head_from_pretrain

    spec = pretrain_spec()
    spec = replace(spec, labels=tuple(info["labels"]), recipe=replace(spec.recipe, width=info["recipe"]["width"]))
    model = build_model(spec, "fer-resnet", d / BACKBONE_FILE, PreprocessSpec.from_dict(info["preprocess"]).input_shape)
    if not init_head_from_pretrain(model, d, spec.labels):
        raise UserError(f"{d / HEAD_FILE} does not hold a head for {list(spec.labels)}; fix: pass a whole folder")
    return model


def _common(values: list) -> object:
    """The value every member shares, else None."""
    return values[0] if all(v == values[0] for v in values) else None


def restricted(model, classes: list[str], labels: tuple[str, ...], name: str):
    """The network with its softmax over `labels` alone, in that order: its last layer (a softmax Dense) cut to
    those classes' logits. A softmax over some of the logits is the full softmax restricted to those classes and
    renormalised, the vote a teacher of more classes gives (trainer/train.py: Teachers)."""
    import keras

    last = model.layers[-1]
    if type(last).__name__ != "Dense" or last.get_config().get("activation") != "softmax":
        raise UserError(
            f"{name}: the last layer of a run of {classes} is not a softmax Dense, so it cannot be restricted to "
            f"{list(labels)}; fix: combine runs of exactly these classes"
        )
    cols = [classes.index(c) for c in labels]
    kernel, bias = last.get_weights()
    head = keras.layers.Dense(len(labels), activation="softmax", name=f"{last.name}_{len(labels)}")
    out = head(last.input)
    head.set_weights([kernel[:, cols], bias[cols]])
    return keras.Model(model.inputs[0], out, name=name)


def combine(spec: str, dirs: list[Path], labels: tuple[str, ...], out_dir: Path, command: str) -> dict:
    """One model of SPEC from finished runs: the mean of their probabilities, as a Keras model whose int8 export is
    one TFLite file (`export` and `evaluate` treat it as any run). A run of more classes than SPEC's takes part
    restricted to SPEC's (`restricted`), and so does a committed pre-training folder's six-class network. Writes
    OUT_DIR/model.keras and a train.json that records each member (its run, classes, command, recipe, teachers
    and the sha256 of the weights it read) and the settings they share. Its cost per face
    is the members' together."""
    import keras

    if len(dirs) < 2:
        raise UserError("an ensemble needs at least two runs; fix: pass two or more finished RUN_DIRs")
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise UserError("a run is named twice; fix: pass each RUN_DIR once")
    infos = _runs(dirs, labels, more_ok=True, pretraining_ok=True)
    for d, info in zip(dirs, infos, strict=True):
        why = _not_combinable(info)
        if why:
            raise UserError(
                f"{d} is {why}; fix: combine runs that finished on train only (a cut run resumes with its own train "
                "command)"
            )
    for key in ("arch", "faces"):
        if _common([i[key] for i in infos]) is None:
            raise UserError(f"the runs differ in {key}; fix: combine runs of one architecture and face source")
    if infos[0]["arch"] != get_spec(spec).arch:
        raise UserError(
            f"the runs are {infos[0]['arch']} networks and {spec} is a {get_spec(spec).arch} spec; fix: combine "
            f"them as a {infos[0]['arch']} spec"
        )
    if (out_dir / "model.keras").exists():
        raise UserError(f"{out_dir} already holds a model; fix: choose another --runs folder or remove it")
    members = []
    for i, (d, info) in enumerate(zip(dirs, infos, strict=True), start=1):
        if _pretraining_folder(d):
            m = pretrained_network(d, info)
        else:
            m = keras.models.load_model(str(d / "model.keras"), compile=False)
        name = f"member_{i}"  # distinct names inside the ensemble
        same = tuple(info["labels"]) == labels
        members.append(
            keras.Model(m.inputs[0], m.outputs[0], name=name) if same else restricted(m, info["labels"], labels, name)
        )
    face = keras.Input(shape=tuple(members[0].inputs[0].shape[1:]), name="face")
    mean = keras.layers.Average(name="mean_probability")([m(face) for m in members])
    model = keras.Model(face, mean, name=f"ensemble_of_{len(members)}")
    recipe = {k: _common([i["recipe"].get(k) for i in infos]) for k in infos[0]["recipe"]}
    more = any(tuple(i["labels"]) != labels for i in infos)  # class counts of other classes would mislead
    info = {
        "spec": spec,
        "labels": list(labels),
        "arch": infos[0]["arch"],
        "recipe": {k: v for k, v in recipe.items() if v is not None and k != "max_minutes"},
        "backbone": _common([i.get("backbone") for i in infos]),
        "preprocess": infos[0]["preprocess"],
        "complete": True,
        "data": ", ".join(sorted({i["data"] for i in infos})),
        "faces": infos[0]["faces"],
        "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": int(model.count_params()),
        "train_counts": None if more else _common([i.get("train_counts") for i in infos]),
        "val_counts": None if more else _common([i.get("val_counts") for i in infos]),
        "minutes_total": round(sum(i.get("minutes_total", 0.0) for i in infos), 1),
        "device": _common([i.get("device") for i in infos]),
        "ensemble": [
            {"run": str(d), **_weights_read(d), **{k: i.get(k) for k in MEMBER_KEYS}}
            for d, i in zip(dirs, infos, strict=True)
        ],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir / "model.keras"))
    write_json(out_dir / "train.json", {k: v for k, v in info.items() if v is not None})
    return info


def _weights_read(d: Path) -> dict:
    """What a member's weights were read from, by sha256: a run's model.keras, or a pre-training folder's
    backbone weights and six-class head (`pretraining_sha256`)."""
    from edge.core.manifest import sha256_file

    if _pretraining_folder(d):
        return {"pretraining_sha256": {f: sha256_file(d / f) for f in (BACKBONE_FILE, HEAD_FILE)}}
    return {"model_sha256": sha256_file(d / "model.keras")}


# What an ensemble keeps of each member's train.json: enough to train it again (command, recipe, teachers,
# backbone weights), its classes (more than the ensemble's when restricted) and to compare it (where, how long,
# how far, its best val accuracy).
MEMBER_KEYS = (
    "labels",
    "command",
    "date",
    "recipe",
    "teachers",
    "backbone_weights",
    "device",
    "epochs_run",
    "minutes_total",
    "best_val_accuracy",
)
