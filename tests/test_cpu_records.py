"""Training runs made on a CPU host (trainer/cpu/records/NAME/, listed in trainer/cpu/README.md) are on record like
the device calls' runs: the README gives the exact command each ran, its curve has one row per epoch run, a judged
run's val.json is the same spec on val, and a shipped model trained by one carries the selection its judgement
made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
    rows = (record / "history.csv").read_text().strip().splitlines()[1:]
    assert rows and info["command"].startswith("emotion-trainer train ")
    if info["complete"]:  # a finished run: a curve row per epoch, its minutes and where it ran
        assert len(rows) == info["epochs_run"] and info["minutes_total"] > 0 and info["device"].startswith("CPU")
        assert max(float(r.split(",")[4]) for r in rows) == pytest.approx(info["best_val_accuracy"], abs=1e-4)
    else:  # stopped before it finished: only its start record (its command and teachers) and the epochs it ran
        assert "epochs_run" not in info and (record / "why-stopped.txt").is_file()
    if (record / "val.json").is_file():
        judged = json.loads((record / "val.json").read_text())
        assert info["complete"] and judged["spec"] == info["spec"] and judged["metrics"]["split"] == "val"


def test_a_shipped_model_trained_here_carries_its_records_selection():
    """A shipped model whose command ran with `--runs runs/cpu-NAME` was judged as record NAME's val.json says."""
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
    for spec, entry in manifest.items():
        run = re.search(r"--runs runs/cpu-(\S+)", entry["provenance"]["command"])
        if not run:
            continue
        record = json.loads((CPU / "records" / run.group(1) / "val.json").read_text())
        assert record["spec"] == spec
        assert {k: record[k] for k in ("tta", "tta_selection", "calibration", "calibration_selection")} == {
            k: entry.get(k) for k in ("tta", "tta_selection", "calibration", "calibration_selection")
        }


def test_an_ensemble_record_names_members_that_are_on_record():
    """A `combine` record keeps each member's command and the sha256 of the model it read; every member is a run
    on record here or in trainer/gpu/records with that command, so it can be trained again."""
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
            assert re.fullmatch(r"[0-9a-f]{64}", member["model_sha256"]) and member["command"] in on_record
            assert member["command"].startswith("emotion-trainer train " + info["spec"] + " ")
