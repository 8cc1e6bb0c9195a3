"""The committed GPU calls (trainer/gpu/*.jobs, run by trainer/gpu/run.sh) are the recipes of the shipped models:
every line must parse with the public CLI, name committed inputs and pin its own cores, and every shipped model
trained by such a call must match its line option for option."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from trainer.__main__ import build_parser
from trainer.train import teacher_model

ROOT = Path(__file__).resolve().parent.parent
JOBS = sorted((ROOT / "trainer" / "gpu").glob("*.jobs"))
PRE = "trainer/pretrained"
RUNNER_OPTIONS = ("cache", "max_minutes", "runs", "data")  # what run.sh itself adds to every line


def job_lines(path: Path) -> list[tuple[str, str, str, list[str]]]:
    """(name, cores, subcommand, its CLI arguments before the data folder's) per line, in run.sh's three forms:
    `NAME CORES SPEC ARGS...` trains, `NAME CORES refit SPEC ARGS...` refits, `NAME CORES pretrain ARGS...`."""
    rows = [shlex.split(line) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all(len(r) >= 3 + (r[2] == "refit") for r in rows), path
    out = []
    for name, cores, first, *rest in rows:
        if first == "refit":
            out.append((name, cores, "refit", [rest[0], "/tmp/data/fer2013", *rest[1:]]))
        elif first == "pretrain":
            out.append((name, cores, "pretrain", ["/tmp/data/fer2013", *rest]))
        else:
            out.append((name, cores, "train", [first, "/tmp/data/fer2013", *rest]))
    return out


def parse_train(args: list[str]) -> dict:
    ns = vars(build_parser().parse_args(args))
    return {k: v for k, v in ns.items() if k not in RUNNER_OPTIONS}


def test_there_are_jobs_files():
    assert JOBS and (ROOT / "trainer" / "gpu" / "run.sh").is_file()


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_every_line_parses_names_committed_inputs_and_pins_its_own_cores(path):
    names: set[str] = set()
    cores: set[int] = set()
    for name, span, sub, args in job_lines(path):
        opts = parse_train([sub, *args])
        assert opts["cmd"] == sub and name not in names
        names.add(name)
        lo, hi = (int(x) for x in span.split("-"))
        assert 0 <= lo <= hi < 16 and not cores & set(range(lo, hi + 1)), (path.name, name, span)
        cores |= set(range(lo, hi + 1))
        if sub == "refit":  # its inputs are the shipped model's: tests/test_refit.py checks each can be refit
            assert opts["spec"] in json.loads((ROOT / "models" / "manifest.json").read_text())["models"]
            continue
        for teacher in opts["teacher"] or []:
            assert (ROOT / teacher / "train.json").is_file() and teacher_model(ROOT / teacher), teacher
        if opts["backbone_weights"]:
            assert (ROOT / opts["backbone_weights"]).is_file()
            assert sub == "pretrain" or opts["spec"].endswith("-resnet")


def test_each_gpu_trained_shipped_model_matches_its_jobs_line():
    lines = {(row[0], parse_train([row[2], *row[3]]).get("spec")): row for path in JOBS for row in job_lines(path)}
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    checked = 0
    for name, entry in manifest["models"].items():
        command = shlex.split(entry["provenance"]["command"])
        run = re.search(r"--runs /tmp/r/(\S+)", entry["provenance"]["command"])
        if run is None:  # not trained by run.sh
            continue
        _, _, sub, args = lines[(run.group(1), name)]
        assert parse_train(command[command.index(sub) :]) == parse_train([sub, *args])
        assert entry["training"]["device"].startswith("GPU")
        checked += 1
    assert checked >= 1


def test_slim_moves_out_only_what_no_line_reads_and_unslim_puts_it_back(tmp_path):
    """A call carries at most 64 MiB, which the tree passes: `run.sh --slim JOBS` moves the large tracked files the
    jobs do not read to .slim/ (a refit line reads the teachers its shipped model learnt from), `--unslim` restores."""
    import shutil
    import subprocess

    shipped = {"models": {"multiclass3-scratch": {"training": {"teachers": [{"path": "trainer/teachers/t2"}]}}}}
    shipped["models"]["multiclass4-resnet"] = {  # a resnet refit reads the backbone its recorded command names
        "training": {"teachers": []},
        "provenance": {
            "command": "emotion-trainer train multiclass4-resnet D --backbone-weights "
            + PRE
            + "/w24/backbone.weights.h5"
        },
    }
    files = ["models/a.int8.tflite", "models/report.html", "trainer/teachers/t1/model.keras"]
    files += ["trainer/teachers/t2/model.keras", "trainer/teachers/t3/model.keras"]
    files += ["trainer/pretrained/backbone.weights.h5", "trainer/pretrained/w32/backbone.weights.h5"]
    files += [PRE + "/w24/backbone.weights.h5"]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes(b"x" * 1000)
    (tmp_path / "models" / "manifest.json").write_text(json.dumps(shipped))
    (tmp_path / "j.jobs").write_text(
        "# a comment naming trainer/teachers/t3\n"
        "a 0-3 multiclass4-resnet --width 32 --backbone-weights trainer/pretrained/w32/backbone.weights.h5 "
        "--teacher trainer/teachers/t1\nb 4-7 refit multiclass3-scratch\nc 8-9 refit multiclass4-resnet\n"
    )
    shutil.copy(ROOT / "trainer" / "gpu" / "run.sh", tmp_path / "run.sh")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    slim = subprocess.run(["bash", "run.sh", "--slim", "j.jobs"], cwd=tmp_path, capture_output=True, text=True)
    assert slim.returncode == 0 and "travels" in slim.stdout, slim.stderr
    kept = {f for f in files if (tmp_path / f).is_file()}
    assert kept == {"trainer/teachers/t1/model.keras", "trainer/teachers/t2/model.keras", files[-2], files[-1]}
    assert all((tmp_path / ".slim" / f).is_file() for f in set(files) - kept)
    subprocess.run(["bash", "run.sh", "--unslim"], cwd=tmp_path, capture_output=True, check=True)
    assert all((tmp_path / f).is_file() for f in files) and not (tmp_path / ".slim").exists()


RECORDS = ROOT / "trainer" / "gpu" / "records"


@pytest.mark.parametrize("path", [p for p in JOBS if re.fullmatch(r"call\d+", p.stem) and int(p.stem[4:]) >= 5])
def test_every_run_of_a_recorded_call_has_its_command_curve_and_minutes(path):
    """From call 5 on every run is on record (shipped or not): its train.json ran exactly its jobs line, its curve
    has one row per epoch run, and a judged fine-tune's val.json is the same spec."""
    for name, _, sub, args in job_lines(path):
        record = RECORDS / path.stem / name
        info = json.loads((record / "train.json").read_text())
        command = shlex.split(info["command"])
        assert parse_train(command[command.index(sub) :]) == parse_train([sub, *args]), (path.name, name)
        rows = (record / "history.csv").read_text().strip().splitlines()[1:]
        assert len(rows) == info["epochs_run"] > 0 and info["minutes_total"] > 0 and info["device"].startswith("GPU")
        if (record / "val.json").is_file():
            judged = json.loads((record / "val.json").read_text())
            assert judged["spec"] == info["spec"] and judged["metrics"]["split"] == "val"
