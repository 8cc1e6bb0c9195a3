"""emotion-edge bench: its JSON schema (numbers are printed by the command, never asserted as speeds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def _bench(edge_models, tmp_path, *args, rc=0):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMOTION_EDGE_MODELS": str(edge_models[0])}
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "bench", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == rc, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_pipeline_bench_schema(edge_models, tmp_path):
    stdout, r = _bench(
        edge_models, tmp_path, "--faces", "2", "--frames", "30", "--warmup", "5", "--model", edge_models[1]
    )
    assert r["schema_version"] == 1 and {"machine", "cpus", "python"} <= set(r["host"])
    p = r["pipeline"]
    assert p["frames"] == 30 and p["fps"] > 0 and p["faces_per_frame"] == 2.0
    assert {"fps", "faces_per_second", "cpu_percent", "peak_rss_mb", "latency_ms", "model", "detector"} <= set(p)
    for stage in ("capture", "detect", "preprocess", "classify", "track", "publish", "total"):
        assert set(p["latency_ms"][stage]) == {"p50", "p95", "p99", "n"} and p["latency_ms"][stage]["n"] == 30
        assert p["latency_ms"][stage]["p50"] <= p["latency_ms"][stage]["p99"]
    assert "end-to-end" in stdout and "classify" in stdout


def test_models_table_schema(edge_models, tmp_path):
    _, r = _bench(edge_models, tmp_path, "--all-models", "--threads", "2", "--frames", "20")
    rows = r["models"]
    assert {(row["variant"], row["threads"]) for row in rows} >= {("int8", 1), ("float32", 1), ("int8", 2)}
    for row in rows:
        assert set(row) == {"model", "variant", "threads", "median_ms", "p95_ms", "size_kb"} and row["median_ms"] > 0


def test_compare_passes_a_slow_reference_and_fails_a_fast_one(edge_models, tmp_path):
    """--compare exits 0 within the tolerance and 1 when this run is worse than the reference beyond it."""
    slow, fast = tmp_path / "slow.json", tmp_path / "fast.json"
    slow.write_text(json.dumps({"label": "slow", "pipeline": {"fps": 1.0, "latency_ms": {"total": {"p50": 1e4}}}}))
    fast.write_text(json.dumps({"label": "fast", "pipeline": {"fps": 1e6, "latency_ms": {"total": {"p50": 1e-6}}}}))
    args = ("--frames", "10", "--warmup", "2", "--model", edge_models[1])
    stdout, _ = _bench(edge_models, tmp_path, *args, "--compare", str(slow))
    assert "reference slow.json" in stdout and "WORSE" not in stdout and stdout.count(" ok") == 2
    stdout, _ = _bench(edge_models, tmp_path, *args, "--compare", str(fast), "--tolerance", "0.5", rc=1)
    assert stdout.count("WORSE") == 2 and "2 number(s) worse than the reference by more than 50%" in stdout


def test_reference_files_hold_measured_numbers():
    refs = sorted((ROOT / "tests" / "bench" / "reference").glob("*.json"))
    assert refs, "tests/bench/reference/ holds this machine's reference results"
    for path in refs:
        r = json.loads(path.read_text())
        assert r["schema_version"] == 1 and r["label"] and r["measured"] is True
        assert r["pipeline"]["fps"] > 0 and r["host"]["machine"] and r["timestamp"]


def test_soak_command_writes_its_series(tmp_path, edge_models):
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "soak", "--minutes", "0.1", "--interval-s", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "EMOTION_EDGE_MODELS": str(edge_models[0])},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert len(data["samples"]) >= 2 and all(s["rss_mb"] > 10 and s["processed_fps"] > 0 for s in data["samples"])
    assert "RSS slope" in proc.stdout


def test_camera_rate_mode_schema(edge_models, tmp_path):
    """--camera-rate: per scene a gated and an ungated run of the real frame loop, and their CPU ratio."""
    stdout, r = _bench(
        edge_models,
        tmp_path,
        *("--frames", "5", "--warmup", "2", "--model", edge_models[1]),
        *("--camera-rate", "--scenes", "empty,1 face", "--seconds", "1.5", "--warmup-s", "0.5"),
    )
    rate = r["camera_rate"]
    assert set(rate) == {"empty", "1 face"}
    for row in rate.values():
        for mode in ("gated", "ungated"):
            run = row[mode]
            assert run["cpu_percent"] > 0 and run["processed_fps"] > 0
            assert {"detector_runs_per_s", "classifications_per_s", "events", "latency_ms"} <= set(run)
        assert row["ungated"]["detector_runs_per_s"] >= row["gated"]["detector_runs_per_s"]
        assert row["cpu_ratio"] == round(row["gated"]["cpu_percent"] / row["ungated"]["cpu_percent"], 3)
    assert rate["1 face"]["ungated"]["classifications_per_s"] > 0
    assert r["camera_rate_setup"]["config"]["gating"]["enabled"] is True
    assert "gated / ungated CPU" in stdout


def test_cpu_name_is_this_machines_model_name():
    """Latencies are recorded with the CPU that measured them: the name is /proc/cpuinfo's, not platform.processor()
    (which is just "x86_64" on some distributions), and "int8 dot product" follows the CPU's own flags."""
    from pathlib import Path

    from edge.bench import cpu_name

    info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    models = [v.strip() for k, _, v in (line.partition(":") for line in info) if k.strip() in ("model name", "Model")]
    flags = {
        f for k, _, v in (line.partition(":") for line in info) if k.strip() in ("flags", "Features") for f in v.split()
    }
    name = cpu_name()
    assert name.startswith(models[0] if models else "")
    assert name.endswith(", int8 dot product") == bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})


def test_a_bench_of_no_frames_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "bench", "--all-models", "--frames", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--frames 0" in proc.stderr
