"""Put a finished run on record (trainer/cpu/records/NAME/, trainer/gpu/records/CALL/NAME/) by a command, not by hand.

A record is the run's own `train.json` and `history.csv` (an ensemble has no curve) and, once the run was judged on
val (`emotion-trainer export|evaluate SPEC DATA --runs R --models M --split val`), `val.json`: the fields of the
model entry that judgement wrote to M/manifest.json which the rule compares and the records' readers use — version,
the TTA, calibration and exposure choices with their val scores, the per-face latency on the judging host and the
headline int8 / float metrics (per-class metrics left out). The entry must be the judgement of this very run (same
command, val split), so a record cannot pair one run's curve with another's score.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge.core.errors import UserError

RUN_FILES = ("train.json", "history.csv")
SELECTIONS = ("version", "tta", "tta_selection", "calibration", "calibration_selection", "exposure_selection")


def judged_fields(entry: dict, spec: str) -> dict:
    """The val.json of a manifest entry written by `evaluate --split val` (selections, latency, headline metrics)."""
    m = entry["metrics"]
    headline = {
        v: {"accuracy": m[v]["accuracy"], "macro_f1": m[v]["macro"]["f1"]} for v in ("int8", "float32") if v in m
    }
    metrics = {"split": m["split"], "n": m["n"], "int8_float_agreement": m.get("int8_float_agreement"), **headline}
    return {k: entry.get(k) for k in SELECTIONS if k in entry} | {
        "latency_ms": entry.get("latency_ms"),
        "metrics": metrics,
        "spec": spec,
    }


def write_record(spec: str, run_dir: Path, dest: Path, models: Path | None = None) -> list[Path]:
    """Copy the run's files to `dest` and, with `models`, write val.json from its judged entry. Returns the files."""
    info_path = run_dir / "train.json"
    if not info_path.is_file():
        raise UserError(f"{run_dir} holds no train.json; fix: give the finished run's folder (RUNS/{spec})")
    info = json.loads(info_path.read_text())
    if info.get("spec") != spec:
        raise UserError(f"{run_dir} is a run of {info.get('spec')}, not {spec}; fix: name the spec it trained")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} is on record already; fix: records are not rewritten, choose another name")
    val = None
    if models is not None:
        manifest = models / "manifest.json"
        entry = json.loads(manifest.read_text())["models"].get(spec) if manifest.is_file() else None
        if entry is None or entry.get("metrics", {}).get("split") != "val":
            raise UserError(
                f"{models} holds no val judgement of {spec}; fix: emotion-trainer export|evaluate {spec} DATA "
                f"--runs {run_dir.parent} --models {models} --split val"
            )
        if entry["provenance"]["command"] != info["command"]:
            raise UserError(
                f"the {spec} judged in {models} is not the run in {run_dir} (its command differs); "
                "fix: export and evaluate this run into its own models folder"
            )
        val = judged_fields(entry, spec)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            written.append(Path(shutil.copyfile(run_dir / name, dest / name)))
    if val is not None:
        (dest / "val.json").write_text(json.dumps(val, indent=1) + "\n")
        written.append(dest / "val.json")
    return written
