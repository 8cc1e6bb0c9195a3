"""Refit (trainer/refit.py, `emotion-trainer refit`): every shipped model can be refit from what is committed, and
the pieces fail the way they should. The end-to-end refit (train + export + evaluate) runs in
tests/test_trainer_smoke.py::test_refit_on_train_and_val_keeps_the_selection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.core.errors import UserError
from edge.core.manifest import Manifest, sha256_file
from edge.core.paths import models_dir
from trainer import refit
from trainer.__main__ import recorded_run, refit_plan
from trainer.dataset import Split
from trainer.train import teacher_model

ROOT = Path(__file__).resolve().parent.parent

SHIPPED = Manifest(models_dir()).names


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_can_be_refit_from_committed_inputs(name):
    """Its recorded command parses, rebuilds its recorded recipe, names its committed teachers (same sha256) and
    backbone; the refit stops at the best epoch of the val curve in its report and keeps its decision settings
    (a shipped refit: its own record, so the command reproduces it). An ensemble (`combine`) is not refit, in one
    line; each of its members' recorded commands passes the same checks instead."""
    entry = Manifest(models_dir()).entry(name).data
    if entry["training"].get("ensemble"):
        with pytest.raises(UserError, match=r"is an ensemble of \d runs .* fix: "):
            refit_plan(models_dir(), name)
        for member in entry["training"]["ensemble"]:
            if "pretraining_sha256" in member:  # a committed pre-training folder: the very files it read
                folder = ROOT / member["run"]
                assert {f: sha256_file(folder / f) for f in member["pretraining_sha256"]} == member[
                    "pretraining_sha256"
                ]
                continue
            member_spec = refit.selection_argv(member["command"])[1]  # e.g. four-class runs of a three-class model
            spec, sel = recorded_run(member_spec, member["command"], member)
            assert len(sel.teacher) == len(member["teachers"] or []) and all(teacher_model(t) for t in sel.teacher)
            assert spec.arch != "resnet" or sel.backbone_weights.is_file()
        return
    spec, sel, record = refit_plan(models_dir(), name)
    if entry["training"].get("refit"):  # a shipped refit: the same command reproduces it from its own record
        assert record == entry["training"]["refit"] and record["epochs"] <= spec.recipe.epochs
        assert entry["tta_selection"] == {"carried_from": record["of"]["int8_sha256"]}
    else:
        history = json.loads((models_dir() / "reports" / f"{name}.json").read_text())["history"]
        vals = [row["val_accuracy"] for row in history]
        assert record["epochs"] == vals.index(max(vals)) + 1 <= spec.recipe.epochs
        assert record["of"]["int8_sha256"] == entry["variants"]["int8"]["sha256"]
    assert record["tta"] == entry["tta"] and record["calibration"] == entry.get("calibration")
    assert len(sel.teacher) == len(entry["training"].get("teachers") or [])
    assert all(teacher_model(t) is not None for t in sel.teacher)  # model.keras or its int8 export
    if spec.arch == "resnet":
        assert sel.backbone_weights is not None and sel.backbone_weights.is_file()


def test_the_recorded_command_is_read_after_any_program_name():
    assert refit.selection_argv("/x/trainer/__main__.py train binary-scratch /d --seed 3") == [
        "train",
        "binary-scratch",
        "/d",
        "--seed",
        "3",
    ]
    assert refit.selection_argv("emotion-trainer suite /d --smoke")[:2] == ["suite", "/d"]
    with pytest.raises(UserError, match="not an 'emotion-trainer train' or 'suite' run"):
        refit.selection_argv("emotion-trainer refit binary-scratch /d")  # a refit is not refit again


def test_best_epoch_is_the_first_best_and_needs_a_val_curve():
    assert refit.best_epoch([{"val_accuracy": 0.5}, {"val_accuracy": 0.7}, {"val_accuracy": 0.7}]) == 2
    for history in ([], [{"val_accuracy": 0.5}, {"accuracy": 0.9}]):
        with pytest.raises(UserError, match="no per-epoch val curve"):
            refit.best_epoch(history)


def test_joined_puts_val_after_train_and_refuses_other_labels():
    def split(n, labels=("happy", "sad"), size=4):
        return Split(np.zeros((n, size, size, 3), np.uint8), np.arange(n) % 2, labels, [str(i) for i in range(n)], {})

    both = refit.joined(split(5), split(3))
    assert both.x.shape[0] == 8 and both.counts() == {"happy": 5, "sad": 3} and both.paths[5:] == ["0", "1", "2"]
    with pytest.raises(UserError, match="differ in labels"):
        refit.joined(split(5), split(3, ("happy", "neutral")))
    with pytest.raises(UserError, match="differ in labels or face size"):
        refit.joined(split(5), split(3, size=8))


def _shipped_copy(tmp_path, edit=lambda models: None):
    """A models folder with the shipped manifest (after `edit` of its "models" table) and reports, no model files."""
    models = tmp_path / "models"
    shutil.copytree(models_dir() / "reports", models / "reports")
    manifest = json.loads((models_dir() / "manifest.json").read_text())
    edit(manifest["models"])
    (models / "manifest.json").write_text(json.dumps(manifest))
    return models


def test_a_changed_teacher_or_recipe_is_refused(tmp_path):
    """A teacher whose bytes differ from the recorded sha256, or code whose recipe for the command differs from the
    recorded one, would refit something else: both are one-line errors before training."""
    taught = {n: Manifest(models_dir()).entry(n).data["training"].get("teachers") or [] for n in SHIPPED}
    name = next(n for n, ts in taught.items() if ts and not ts[0]["path"].endswith("-int8"))  # a Keras teacher
    models = _shipped_copy(tmp_path)
    spec, sel, _ = refit_plan(models, name)
    entry = Manifest(models).entry(name)
    fake = tmp_path / "teacher"
    fake.mkdir()
    blob = bytearray((sel.teacher[0] / "model.keras").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (fake / "model.keras").write_bytes(bytes(blob))
    with pytest.raises(UserError, match="not the ones it learnt from"):
        refit.check_teachers([fake, *sel.teacher[1:]], entry.data["training"], name)
    with pytest.raises(UserError, match="is not here"):
        refit.check_teachers([tmp_path / "missing"], entry.data["training"], name)
    int8 = [n for n, ts in taught.items() if any(t["path"].endswith("-int8") for t in ts)]  # model.int8.tflite
    assert int8  # binary-resnet and multiclass4-scratch learnt from int8 teachers: the same check on those bytes
    for other in int8:
        _, other_sel, _ = refit_plan(models, other)
        recorded = Manifest(models).entry(other).data["training"]
        refit.check_teachers(other_sel.teacher, recorded, other)  # as committed: accepted
        tflite = bytearray((other_sel.teacher[0] / "model.int8.tflite").read_bytes())
        tflite[len(tflite) // 2] ^= 0xFF
        (fake / "model.keras").unlink(missing_ok=True)
        (fake / "model.int8.tflite").write_bytes(bytes(tflite))
        with pytest.raises(UserError, match="not the ones it learnt from"):
            refit.check_teachers([fake, *other_sel.teacher[1:]], recorded, other)
    models = _shipped_copy(tmp_path / "changed", lambda m: m[name]["training"]["recipe"].update(dropout=0.1))
    with pytest.raises(UserError, match=r"no longer gives its recorded recipe \(dropout differ\)"):
        refit_plan(models, name)


def test_a_recorded_command_this_cli_cannot_parse_is_one_line(tmp_path):
    trained = {n: Manifest(models_dir()).entry(n).data["training"] for n in SHIPPED}
    # a model its own recorded command made (a refit reruns its record's selection command, an ensemble is refused)
    name = next(n for n, t in trained.items() if not t.get("refit") and not t.get("ensemble"))

    def edit(m):
        m[name]["provenance"]["command"] += " --option-of-another-version 3"

    models = _shipped_copy(tmp_path, edit)
    with pytest.raises(UserError, match=r"does not parse with this CLI \(.*--option-of-another-version"):
        refit_plan(models, name)


def test_a_shipped_refit_is_reproduced_not_refit_again(tmp_path):
    """Refitting a model that is already a refit runs its own record again (same selection run, epochs and
    decisions); a record without those parts is a one-line error."""
    name = next(n for n in SHIPPED if not Manifest(models_dir()).entry(n).data["training"].get("ensemble"))
    models = _shipped_copy(tmp_path, lambda m: m[name]["training"].update(refit={"epochs": 1}))
    with pytest.raises(UserError, match=r"is a refit whose record lacks calibration, of, splits, tta; fix:"):
        refit_plan(models, name)
    done = {
        "of": {"int8_sha256": "ab" * 32, "command": f"emotion-trainer train {name} /d", "version": "v"},
        "splits": ["train", "val"],
        "epochs": 2,
        "tta": "flip",
        "calibration": None,
    }
    models = _shipped_copy(tmp_path / "ok", lambda m: m[name]["training"].update(refit=done))
    assert refit.record(Manifest(models).entry(name), []) == done


def test_refit_of_a_model_not_in_the_manifest_is_one_line(run, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "manifest.json").write_text(json.dumps({"schema_version": 1, "models": {}}))
    proc = run("trainer", "refit", "binary-scratch", tmp_path, "--models", tmp_path / "models")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "binary-scratch is not in" in proc.stderr and "fix:" in proc.stderr


def test_smoke_on_the_refit_of_a_full_run_is_refused_in_one_line(run, tmp_path):
    """A refit repeats the recorded run: `--smoke` on the refit of a full run would change nothing, so it is refused
    before anything loads (the smoke suite's refit, whose run was a smoke one, takes it: test_trainer_smoke.py)."""
    proc = run("trainer", "refit", "multiclass4-scratch", tmp_path, "--smoke", "--runs", tmp_path / "runs")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "trained without --smoke" in proc.stderr and "fix: drop --smoke" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_without_teachers_may_predate_distill_weight():
    """A recorded recipe without `distill_weight` (code before distillation) matches when the run had no teachers,
    as the weight then changes nothing; with teachers the missing weight is a difference."""
    from trainer.specs import get_spec

    spec = get_spec("multiclass4-resnet")
    recorded = {k: v for k, v in spec.recipe.to_dict().items() if k != "distill_weight"}
    refit.check_recipe(spec, {"recipe": recorded, "teachers": None}, "old")
    with pytest.raises(UserError, match=r"old's recorded command no longer gives its recorded recipe \(distill_weight"):
        refit.check_recipe(spec, {"recipe": recorded, "teachers": [{"run": "t", "sha256": "0" * 64}]}, "old")
