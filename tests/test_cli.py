"""Every subcommand of `emotion-edge` and `emotion-trainer` is run for real at least once (not only --help).

The commands run elsewhere are listed in ELSEWHERE with the test that runs them; the rest run here. A new
subcommand fails test_every_subcommand_is_run until a test runs it.
"""

from __future__ import annotations

import json

import pytest

from edge.core.manifest import model_version
from tests.support.broker import free_port

ELSEWHERE = {
    "emotion-edge run": "tests/test_daemon_mqtt.py and tests/support/daemon.py (and below, --publisher stdout)",
    "emotion-edge check-config": "tests/test_bad_inputs.py (and below, on the example config)",
    "emotion-edge bench": "tests/test_bench.py",
    "emotion-edge soak": "tests/test_bench.py::test_soak_command_writes_its_series",
    "emotion-edge listen": "tests/test_listen.py",
    "emotion-edge analyze": "tests/test_analyze.py",
    "emotion-trainer prepare": "tests/test_cli_trainer.py::test_label_mapping_and_unsplit_dataset",
    "emotion-trainer crop-stats": "tests/test_cli_trainer.py::test_crop_stats_runs_and_backs_the_shipped_crop",
    "emotion-trainer compare-fer": "tests/test_cli_trainer.py::test_compare_fer_without_fer_says_how_to_get_it",
    "emotion-trainer suite": "tests/conftest.py::suite (and tests/test_trainer_smoke.py)",
    "emotion-trainer report": "tests/test_report.py",
    "emotion-trainer robustness": "tests/test_robustness.py",
    "emotion-trainer exposure": "tests/test_robustness.py::test_exposure_rows_match_the_recorded_choice",
    "emotion-trainer refit": "tests/test_trainer_smoke.py::test_refit_on_train_and_val_keeps_the_selection",
    "emotion-trainer ensemble": "tests/test_trainer_smoke.py::test_ensemble_of_one_run_twice_is_that_run",
    "emotion-trainer combine": "tests/test_trainer_smoke.py::test_combine_ships_the_members_mean_as_one_model",
    "emotion-trainer record": "tests/test_trainer_smoke.py::test_record_puts_a_run_and_its_val_judgement_on_record",
    "emotion-trainer bench-batches": "tests/test_cli_trainer.py::test_bench_batches_times_the_training_input_pipeline",
}
HERE = {
    "emotion-edge models",
    "emotion-edge example-config",
    "emotion-edge fetch",
    "emotion-edge demo",
    "emotion-trainer pretrain",
    "emotion-trainer train",
    "emotion-trainer export",
    "emotion-trainer evaluate",
}


def _subcommands(parser) -> set[str]:
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {f"{parser.prog} {name}" for name in action.choices}


def test_every_subcommand_is_run():
    from edge.__main__ import build_parser as edge_parser
    from trainer.__main__ import build_parser as trainer_parser

    assert _subcommands(edge_parser()) | _subcommands(trainer_parser()) == set(ELSEWHERE) | HERE


def test_models_lists_every_shipped_model(run):
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    proc = run("edge", "models")
    assert proc.returncode == 0, proc.stderr
    manifest = Manifest(models_dir())
    rows = {line.split()[0].rstrip("*"): line.split() for line in proc.stdout.splitlines()[1:] if line.strip()}
    for name in manifest.names:
        acc = manifest.entry(name).data["metrics"]["int8"]["accuracy"]
        assert f"{acc:.4f}" in rows[name], rows[name]  # the manifest's number, printed
        assert rows[name][-1] == manifest.entry(name).version  # and the version events publish
    assert f"{manifest.default_model}*" in proc.stdout


def test_example_config_passes_check_config_and_runs(run, tmp_path):
    proc = run("edge", "example-config")
    assert proc.returncode == 0 and "[camera]" in proc.stdout
    cfg = tmp_path / "example.toml"
    cfg.write_text(proc.stdout)
    proc = run("edge", "check-config", "--config", cfg)
    assert proc.returncode == 0, proc.stderr
    proc = run("edge", "run", "--config", cfg, "--publisher", "stdout", "--duration", "4", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kinds = [json.loads(line)["topic"].rsplit("/", 1)[1] for line in proc.stdout.splitlines()]
    assert kinds[0] == "status" and kinds[-1] == "status" and "events" in kinds  # online ... events ... stopped


def test_fetch_checks_what_is_there(run):
    """Everything was fetched by tests/run.sh: `fetch` checks each file's sha256 and downloads nothing."""
    proc = run("edge", "fetch", timeout=120)
    assert proc.returncode == 0, proc.stderr
    oks = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(oks) >= 4 and any("blazeface" in line or "face_detection" in line for line in oks)


def test_demo_without_a_broker_prints_events(run):
    """`demo` falls back to stdout when no broker answers (here: a free port with nothing on it)."""
    proc = run("edge", "demo", "--duration", "5", "--port", str(free_port()), timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "no MQTT broker" in lines[0]["demo"]  # says why it prints here
    events = [m["payload"] for m in lines[1:] if m["topic"].endswith("/events")]
    assert any(p["type"] == "appear" for p in events), proc.stdout[-2000:]


@pytest.mark.slow
def test_trainer_steps_one_by_one(run, fer_root, tmp_path):
    """pretrain, train, export and evaluate as a user runs them, each once, on a smoke budget."""
    pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
    common = ("--smoke", "--runs", tmp_path / "runs", "--models", tmp_path / "models", "--cache", tmp_path / "c")
    # A run longer than one sitting: --max-minutes 0 stops after the first of two epochs with a checkpoint...
    pre = tmp_path / "runs" / "backbone-pretrain"
    chunk = ("--epochs", "2", "--max-minutes", "0")
    proc = run("trainer", "pretrain", fer_root, *common, *chunk, timeout=600)
    assert proc.returncode == 0 and "run the same command to continue" in proc.stdout, proc.stderr[-2000:]
    assert (pre / "backup").is_dir() and (pre / "backbone.weights.h5").is_file()
    # ...and the same command continues it; a better earlier epoch (here: claimed in history.csv) stays the best
    # (written here as a run started before history.csv had its `seconds` column: resuming keeps that header)
    rows = (pre / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = rows[1].split(",")
    assert float(first[header.index("seconds")]) > 0
    first[header.index("val_accuracy")] = "0.99"
    del first[header.index("seconds")], header[header.index("seconds")]
    (pre / "history.csv").write_text("\n".join([",".join(header), ",".join(first), *rows[2:]]) + "\n")
    best_before = (pre / "best.keras").stat().st_mtime_ns
    proc = run("trainer", "pretrain", fer_root, *common, *chunk, timeout=600)
    assert proc.returncode == 0 and "backbone pre-trained" in proc.stdout, proc.stderr[-2000:]
    assert "continue" not in proc.stdout and not (pre / "backup").exists()
    info = json.loads((pre / "train.json").read_text())
    assert info["complete"] and info["epochs_run"] == 2 and info["epochs_this_run"] == 1
    rows = [row.split(",") for row in (pre / "history.csv").read_text().splitlines()]
    assert len(rows) == 3 and rows[0] == header and all(len(row) == len(header) for row in rows)
    assert 0 < float(rows[2][header.index("val_accuracy")]) < 0.99
    assert (pre / "best.keras").stat().st_mtime_ns == best_before
    assert (pre / "head.npz").is_file()
    proc = run("trainer", "train", "binary-resnet", fer_root, *common, "--epochs", "1", timeout=600)
    assert proc.returncode == 0 and "binary-resnet: val accuracy" in proc.stdout, proc.stderr[-2000:]
    assert json.loads((tmp_path / "runs" / "binary-resnet" / "train.json").read_text())["head_from_pretrain"]
    proc = run("trainer", "export", "binary-resnet", fer_root, *common, "--calibration", "20", timeout=600)
    assert proc.returncode == 0 and "binary-resnet int8" in proc.stdout, proc.stderr[-2000:]
    proc = run("trainer", "evaluate", "binary-resnet", fer_root, *common, "--tta", "none", timeout=600)
    assert proc.returncode == 0 and "binary-resnet int8" in proc.stdout, proc.stderr[-2000:]
    entry = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["binary-resnet"]
    assert entry["tta"] == "none" and entry["metrics"]["split"] == "test" and entry["latency_ms"]["int8"]["p50"] > 0


@pytest.mark.slow
def test_suite_split_over_sittings(run, fer_root, tmp_path):
    """`suite` cut by --max-minutes stops with a checkpoint and exports nothing; the same command continues the run
    and only then exports and evaluates it."""
    pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
    common = ("--smoke", "--runs", tmp_path / "runs", "--models", tmp_path / "models", "--cache", tmp_path / "c")
    cmd = ("trainer", "suite", fer_root, *common, "--specs", "binary-scratch", "--epochs", "2", "--max-minutes", "0")
    proc = run(*cmd, timeout=600)
    assert proc.returncode == 0 and "run the same command to continue" in proc.stdout, proc.stderr[-2000:]
    assert not (tmp_path / "models" / "manifest.json").exists()
    proc = run(*cmd, timeout=600)
    assert proc.returncode == 0 and "binary-scratch int8" in proc.stdout, proc.stderr[-2000:]
    entry = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["binary-scratch"]
    assert entry["training"]["epochs_run"] == 2 and entry["training"]["complete"] is True
    assert entry["version"] == model_version(entry)
    proc = run(*cmd, timeout=600)
    assert "finished (trained, exported, evaluated); skipped" in proc.stdout, proc.stdout
