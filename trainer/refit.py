"""Refit: a shipped model's training run again, on train + val, stopped at the epoch its selection chose.

Selection (epochs, test-time augmentation, decision offsets, which run ships) used val; once it is made, val
is about 13% more faces to learn from. The refit repeats the shipped model's recorded command (its manifest
`provenance.command`, parsed by the real CLI, checked against the recorded recipe and teachers), with the
val faces added to the training faces and the same learning-rate schedule cut at the best epoch of the
selection run's val curve (the report's history). Val cannot judge the result, so it keeps the selection
model's TTA and calibration (`evaluate` reads them from `training.refit`) and is judged on test only.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.manifest import ModelEntry, sha256_file

from .dataset import Split
from .specs import ModelSpec, recipe_differences


def selection_argv(command: str) -> list[str]:
    """The CLI arguments of a recorded `emotion-trainer train SPEC DATA ...` or `... suite DATA ...` (any program
    name before the subcommand)."""
    words = shlex.split(command)
    at = next((i for i, w in enumerate(words) if w in ("train", "suite")), None)
    if at is None:
        raise UserError(
            f"the recorded command {command!r} is not an 'emotion-trainer train' or 'suite' run; fix: refit a "
            "model that one of them made (its manifest provenance.command)"
        )
    return words[at:]


def best_epoch(history: list[dict]) -> int:
    """1-based epoch of the highest val accuracy: the epoch whose weights the checkpoint kept (first of ties)."""
    vals = [row.get("val_accuracy") for row in history]
    if not vals or any(v is None for v in vals):
        raise UserError(
            "the model's report has no per-epoch val curve, so the epoch to stop at is unknown; fix: re-evaluate "
            "it with --runs pointing at its training run folder (which holds history.csv)"
        )
    return int(np.argmax(np.asarray(vals, dtype=np.float64))) + 1


def check_recipe(spec: ModelSpec, training: dict, name: str) -> None:
    """The recipe rebuilt from the recorded command must be the recipe recorded (`training`: the manifest entry's,
    or an ensemble member's record; time limits aside). A run without teachers may predate `distill_weight`, which
    has no effect without them (the first CPU fine-tune, `trainer/teachers/multiclass4-resnet-seed1234`)."""
    ignore = ("max_minutes",) if training.get("teachers") else ("max_minutes", "distill_weight")
    differ = recipe_differences(training["recipe"], spec.recipe, ignore)
    if differ:
        raise UserError(
            f"{name}'s recorded command no longer gives its recorded recipe ({', '.join(differ)} differ); "
            "fix: refit with the code that trained it (git checkout of its commit)"
        )


def check_teachers(teachers: list[Path], training: dict, name: str) -> None:
    """The teachers named by the command are the ones the model learnt from (sha256 of each teacher's model)."""
    from .train import teacher_model

    recorded = [t["sha256"] for t in training.get("teachers") or []]
    found = []
    for t in teachers:
        path = teacher_model(Path(t))
        if path is None:
            raise UserError(f"teacher {t} is not here; fix: run from the repository root (teachers are committed)")
        found.append(sha256_file(path))
    if found != recorded:
        raise UserError(
            f"the teachers in {name}'s command are not the ones it learnt from (sha256 differ); "
            "fix: restore the committed teachers (git checkout trainer/teachers)"
        )


def record(entry: ModelEntry, history: list[dict]) -> dict:
    """What train.json (and the refit model's manifest entry) keep about the selection it refits. A shipped
    refit keeps its own record, so refitting it again reproduces it (the same selection run, epochs and
    decision settings) rather than refitting a refit."""
    done = entry.data.get("training", {}).get("refit")
    if done:
        missing = sorted({"of", "splits", "epochs", "tta", "calibration"} - set(done))
        if missing or not {"command", "int8_sha256"} <= set(done.get("of") or {}):
            raise UserError(
                f"{entry.name} is a refit whose record lacks {', '.join(missing) or 'of.command/of.int8_sha256'}; "
                "fix: restore the shipped models/manifest.json (git checkout models/)"
            )
        return dict(done)
    return {
        "of": {
            "version": entry.data.get("version"),
            "int8_sha256": entry.data["variants"]["int8"]["sha256"],
            "command": entry.data["provenance"]["command"],
            "trained": entry.data["provenance"]["trained"],
        },
        "splits": ["train", "val"],
        "epochs": best_epoch(history),
        "tta": entry.data.get("tta") or "none",
        "calibration": entry.data.get("calibration"),
        "exposure": (entry.data.get("preprocess") or {}).get("exposure"),
    }


def training_part(record: dict | None) -> dict | None:
    """What a resumed refit must share with its first sitting: the selection run it repeats and where it stops.
    The decision settings (TTA, calibration, exposure, and the version that hashes them) may since be re-chosen
    on val for the selection model; the refit takes the current ones, as a fresh refit would."""
    if record is None:
        return None
    return {
        **{k: v for k, v in record.items() if k not in ("tta", "calibration", "exposure")},
        "of": {k: v for k, v in record["of"].items() if k != "version"},
    }


def joined(train: Split, val: Split) -> Split:
    """The training faces of a refit: train followed by val (same labels, same preprocessing)."""
    if train.labels != val.labels or train.x.shape[1:] != val.x.shape[1:]:
        raise UserError("train and val differ in labels or face size; fix: prepare both with the same spec")
    return Split(
        np.concatenate([train.x, val.x]),
        np.concatenate([train.y, val.y]),
        train.labels,
        [*train.paths, *val.paths],
        {k: train.skipped.get(k, 0) + val.skipped.get(k, 0) for k in {*train.skipped, *val.skipped}},
    )
