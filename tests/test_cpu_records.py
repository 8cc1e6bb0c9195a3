"""Training runs made on a CPU host (trainer/cpu/records/NAME/, listed in trainer/cpu/README.md) are on record like
the device calls' runs: the README gives the exact command each ran, its curve has one row per epoch run, a judged
run's val.json is the same spec on val, and a shipped model trained by one carries the selection its judgement
made."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from edge.core.manifest import sha256_file

ROOT = Path(__file__).resolve().parent.parent
CPU = ROOT / "trainer" / "cpu"
RECORDS = sorted(p for p in (CPU / "records").iterdir() if p.is_dir())


def test_the_readme_lists_each_record_with_its_command():
    readme = (CPU / "README.md").read_text()
    assert RECORDS
    for record in RECORDS:
        info = json.loads((record / "train.json").read_text())
        assert f"`{record.name}`" in readme and f"`{info['command']}`" in readme, record.name


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.name)
def test_each_record_has_its_curve_and_minutes(record):
    info = json.loads((record / "train.json").read_text())
    if info["command"].startswith("emotion-trainer combine "):  # an ensemble: no curve of its own, its members'
        assert not (record / "history.csv").exists()
        return
    with (record / "history.csv").open() as f:  # by name: later runs have a `seconds` column too
        rows = list(csv.DictReader(f))
    if info["command"].startswith("emotion-trainer refit "):  # val was training data: no val curve, no val.json
        assert info["complete"] and len(rows) == info["epochs_run"] == info["refit"]["epochs"]
        assert info["minutes_total"] > 0 and info["device"].startswith("CPU") and info["best_val_accuracy"] is None
        assert all(r["val_accuracy"] == "NA" for r in rows) and not (record / "val.json").exists()
        return
    assert rows and info["command"].startswith("emotion-trainer train ")
    if info["complete"]:  # a finished run: a curve row per epoch, its minutes and where it ran
        assert len(rows) == info["epochs_run"] and info["minutes_total"] > 0 and info["device"].startswith("CPU")
        assert max(float(r["val_accuracy"]) for r in rows) == pytest.approx(info["best_val_accuracy"], abs=1e-4)
    else:  # stopped before it finished: only its start record (its command and teachers) and the epochs it ran
        assert "epochs_run" not in info and (record / "why-stopped.txt").is_file()
    if (record / "val.json").is_file():
        judged = json.loads((record / "val.json").read_text())
        assert info["complete"] and judged["spec"] == info["spec"] and judged["metrics"]["split"] == "val"


def judged_record(command: str) -> Path | None:
    """The val.json of the run a shipped model's command made, when that run is on record: `--runs runs/cpu-NAME`
    here, `--runs /tmp/r/NAME` by trainer/gpu/run.sh (trainer/gpu/records/CALL/NAME)."""
    cpu = re.search(r"--runs runs/cpu-(\S+)", command)
    if cpu:
        return CPU / "records" / cpu.group(1) / "val.json"
    gpu = re.search(r"--runs /tmp/r/(\S+)", command)
    judged = sorted((ROOT / "trainer" / "gpu" / "records").glob(f"*/{gpu.group(1)}/val.json")) if gpu else []
    assert len(judged) <= 1, judged
    return judged[0] if judged else None


def test_a_shipped_model_judged_on_val_carries_its_records_selection():
    """A shipped model made by a run on record (on this CPU or on a lent GPU) and judged on val ships the TTA and
    calibration its judgement chose (the record's val.json) — with the val scores behind them, unless val since chose
    an exposure normalisation for it (`evaluate` then measured them again on the faces so preprocessed)."""
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
    checked = 0
    for spec, entry in manifest.items():
        path = judged_record(entry["provenance"]["command"])
        if path is None:  # trained before records were kept, or a refit (judged on test only)
            continue
        record = json.loads(path.read_text())
        assert record["spec"] == spec
        keys = ("tta", "calibration")
        if entry["preprocess"].get("exposure") is None:
            keys += ("tta_selection", "calibration_selection")
        assert {k: record[k] for k in keys} == {k: entry.get(k) for k in keys}, spec
        checked += 1
    assert checked >= 1


def test_an_ensemble_record_names_members_that_are_on_record():
    """A `combine` record keeps each member's command and the sha256 of the model it read; every member is a run
    on record here or in trainer/gpu/records with that command, so it can be trained again, or a committed folder
    (trainer/teachers, trainer/pretrained) whose files are the very ones it read."""
    on_record = {json.loads(p.read_text())["command"] for p in ROOT.glob("trainer/*/records/**/train.json")}
    combined = [
        r
        for r in RECORDS
        if json.loads((r / "train.json").read_text())["command"].startswith("emotion-trainer combine ")
    ]
    assert combined  # e4a
    for record in combined:
        info = json.loads((record / "train.json").read_text())
        assert len(info["ensemble"]) >= 2 and all(m["run"] in info["command"] for m in info["ensemble"])
        for member in info["ensemble"]:
            folder = ROOT / member["run"]
            if member["run"].startswith("trainer/"):  # a committed folder: the very files the member was read from
                read = member.get("pretraining_sha256") or {"model.keras": member["model_sha256"]}
                assert {f: sha256_file(folder / f) for f in read} == read, member["run"]
                assert json.loads((folder / "train.json").read_text())["command"] == member["command"]
                continue
            assert re.fullmatch(r"[0-9a-f]{64}", member["model_sha256"]) and member["command"] in on_record
            assert member["command"].startswith("emotion-trainer train ")
            # of the ensemble's classes or more (e4a's record predates members' own classes: it took only equal ones)
            assert set(info["labels"]) <= set(member.get("labels", info["labels"]))


def test_a_shipped_refit_made_here_is_on_record():
    """A shipped model refit on this CPU (`emotion-trainer refit ...` in its provenance, not a GPU call's /tmp/r/
    paths) has its record: the same command, the same refit (the model it refits, by int8 sha256, and the epochs),
    the same minutes."""
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
    records = {r.name: json.loads((r / "train.json").read_text()) for r in RECORDS}
    for spec, entry in manifest.items():
        command = entry["provenance"]["command"]
        if not command.startswith("emotion-trainer refit ") or "/tmp/r/" in command:
            continue
        [info] = [i for i in records.values() if i["command"] == command and i["spec"] == spec]
        assert info["refit"] == entry["training"]["refit"], spec
        assert info["minutes_total"] == entry["training"]["minutes_total"], spec
