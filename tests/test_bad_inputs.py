"""Every class of user mistake found before start-up: one line naming the fix, exit status 2, no traceback —
from `check-config` and `run` alike (the real CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.support.broker import self_signed
from tests.support.daemon import ROOT, write_config

# (id, top-level keys, tables, words the error line must contain)
CONFIG_CASES = [
    ("fps-nan", {}, {"camera": {"fps": float("nan")}}, "camera.fps"),
    ("fps-negative", {}, {"camera": {"fps": -5.0}}, "camera.fps"),
    ("fps-zero", {}, {"camera": {"fps": 0.0}}, "camera.fps"),
    ("score-zero", {}, {"detector": {"score_threshold": 0.0}}, "detector.score_threshold"),
    ("score-above-one", {}, {"detector": {"score_threshold": 1.5}}, "detector.score_threshold"),
    ("max-faces-zero", {}, {"detector": {"max_faces": 0}}, "detector.max_faces"),
    ("max-faces-huge", {}, {"detector": {"max_faces": 10**9}}, "detector.max_faces"),
    ("detector-threads-huge", {}, {"detector": {"threads": 1000000}}, "detector.threads"),
    ("detector-pad", {}, {"detector": {"pad": 1.5}}, "detector.pad"),
    ("classifier-threads-zero", {}, {"classifier": {"threads": 0}}, "classifier.threads"),
    ("min-confidence", {}, {"tracking": {"min_confidence": 2.0}}, "tracking.min_confidence"),
    ("max-missing", {}, {"tracking": {"max_missing_s": -1.0}}, "tracking.max_missing_s"),
    ("camera-reconnect", {}, {"camera": {"reconnect_max_s": -1.0}}, "camera.reconnect_max_s"),
    ("outbox-zero", {}, {"mqtt": {"outbox_max_events": 0}}, "mqtt.outbox_max_events"),
    ("port-zero", {}, {"mqtt": {"port": 0}}, "mqtt.port"),
    ("port-negative", {}, {"mqtt": {"port": -1}}, "mqtt.port"),
    ("keepalive", {}, {"mqtt": {"keepalive_s": -1}}, "mqtt.keepalive_s"),
    ("host-empty", {}, {"mqtt": {"host": ""}}, "mqtt.host"),
    ("reconnect-order", {}, {"mqtt": {"reconnect_min_s": 100, "reconnect_max_s": 10}}, "reconnect_min_s"),
    ("device-plus", {"device_id": "a+b"}, {}, "device_id"),
    ("device-hash", {"device_id": "a#b"}, {}, "device_id"),
    ("device-nul", {"device_id": "a\0b"}, {}, "device_id"),
    ("prefix-wildcard", {}, {"mqtt": {"topic_prefix": "a/+/b"}}, "mqtt.topic_prefix"),
    ("prefix-sys", {}, {"mqtt": {"topic_prefix": "$SYS/x"}}, "mqtt.topic_prefix"),
    ("camera-name", {}, {"camera": {"name": "c+d"}, "homeassistant": {"enabled": True}}, "camera.name"),
    ("discovery-prefix", {}, {"homeassistant": {"enabled": True, "discovery_prefix": "home/#"}}, "discovery_prefix"),
    ("unknown-key", {"colour": "blue"}, {}, "colour"),
    ("classify-above-detect", {}, {"classifier": {"classify_hz": 8.0}, "gating": {"detect_hz": 5.0}}, "classify_hz"),
    ("detect-above-max", {}, {"gating": {"detect_hz": 20.0, "max_detect_hz": 10.0}}, "max_detect_hz"),
    ("old-smoothing-key", {}, {"tracking": {"smoothing": 0.3}}, "smoothing_s"),
    ("preview-not-host-port", {}, {"preview": {"enabled": True, "listen": "8080"}}, "preview.listen"),
    ("preview-public-no-password", {}, {"preview": {"enabled": True, "listen": "0.0.0.0:8080"}}, "password"),
]


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return str(v).lower()
    return "nan" if v != v else str(v)


def _cli(*args: str, models=None, timeout: float = 60):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if models:
        env["EMOTION_EDGE_MODELS"] = str(models)
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _assert_one_line(proc, *needles: str) -> None:
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "terminate called" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("emotion-edge: error:")]
    assert len(lines) == 1, err[-2000:]
    assert "fix" in lines[0] or "must" in lines[0] or "not" in lines[0], lines[0]
    for n in needles:
        assert n in lines[0], lines[0]


def _both(cfg, models, *needles):
    """check-config and run give the same one-line verdict."""
    _assert_one_line(_cli("check-config", "--config", str(cfg), models=models), *needles)
    _assert_one_line(_cli("run", "--config", str(cfg), "--duration", "5", models=models), *needles)


@pytest.mark.parametrize("top,tables,needle", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_values(tmp_path, edge_models, top, tables, needle):
    tables = {**tables, "classifier": {"model": edge_models[1], **tables.get("classifier", {})}}
    lines = [f"{k} = {_toml_value(v)}" for k, v in {"device_id": "t", **top}.items()]
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    cfg = tmp_path / "c.toml"
    cfg.write_text("\n".join(lines) + "\n")
    _both(cfg, edge_models[0], needle)


def test_config_file_itself(tmp_path, edge_models):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'device_id = "caf\xe9"\n')
    _both(bad, edge_models[0], "UTF-8")
    _both(tmp_path, edge_models[0], "directory")


def _password_cfg(tmp_path, models, content: bytes):
    pw = tmp_path / "pw"
    pw.write_bytes(content)
    pw.chmod(0o600)
    return write_config(
        tmp_path / "c.toml",
        {"device_id": "t"},
        classifier={"model": models[1]},
        mqtt={"username": "u", "password_file": str(pw), "outbox_path": str(tmp_path / "o.sqlite")},
    )


@pytest.mark.parametrize(
    "content,needle",
    [(b"\xff\xfe\x00\x01", "UTF-8"), (b"", "one non-empty line"), (b"a\nb\n", "one non-empty line")],
    ids=["binary", "empty", "two-lines"],
)
def test_password_file(tmp_path, edge_models, content, needle):
    _both(_password_cfg(tmp_path, edge_models, content), edge_models[0], "password_file", needle)


def test_tls_files(tmp_path, edge_models):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed (tests/run.sh installs it)")
    garbage = tmp_path / "ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "t"},
        classifier={"model": edge_models[1]},
        mqtt={"outbox_path": str(tmp_path / "o.sqlite")},
        mqtt__tls={"enabled": True, "ca_file": str(garbage)},
    )
    _both(cfg, edge_models[0], "ca_file")
    a, b = self_signed(tmp_path, "a"), self_signed(tmp_path, "b")  # a certificate with another's key
    cfg = write_config(
        tmp_path / "c2.toml",
        {"device_id": "t"},
        classifier={"model": edge_models[1]},
        mqtt={"outbox_path": str(tmp_path / "o.sqlite")},
        mqtt__tls={"enabled": True, "cert_file": str(a["cert"]), "key_file": str(b["key"])},
    )
    _both(cfg, edge_models[0], "cert_file")


def _models_copy(tmp_path, edge_models, mutate) -> tuple:
    src, name = edge_models
    dst = tmp_path / "models"
    dst.mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    for v in manifest["models"][name]["variants"].values():
        shutil.copy2(src / v["file"], dst / v["file"])
    shutil.copytree(src / "detectors", dst / "detectors")
    (dst / "manifest.json").write_text(json.dumps(mutate(manifest, name)))
    cfg = write_config(tmp_path / "c.toml", {"device_id": "t"}, classifier={"model": name})
    return dst, cfg


def _swap_labels(m, n):
    labels = m["models"][n]["labels"]
    labels[0], labels[1] = labels[1], labels[0]
    return m


def _drop_file(m, n):
    del m["models"][n]["variants"]["int8"]["file"]
    return m


def _size_string(m, n):
    m["models"][n]["preprocess"]["size"] = "100"
    return m


MANIFEST_CASES = [
    ("labels-swapped", _swap_labels, "original order"),
    (
        "labels-repeated",
        lambda m, n: (m["models"][n].__setitem__("labels", ["happy", "happy", "sad", "surprise"]), m)[1],
        "labels",
    ),
    ("variant-without-file", _drop_file, "malformed"),
    ("size-as-string", _size_string, "malformed"),
    (
        "calibration-missing-a-label",
        lambda m, n: (m["models"][n].__setitem__("calibration", {"happy": 0.0, "sad": 0.3}), m)[1],
        "malformed calibration",
    ),
    (
        "calibration-not-a-number",
        lambda m, n: (m["models"][n].__setitem__("calibration", dict.fromkeys(m["models"][n]["labels"], "x")), m)[1],
        "malformed calibration",
    ),
    ("a-list", lambda m, n: [m], "'models' table"),
    ("no-models", lambda m, n: {"schema_version": 1}, "'models' table"),
]


@pytest.mark.parametrize("mutate,needle", [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_mistakes(tmp_path, edge_models, mutate, needle):
    models, cfg = _models_copy(tmp_path, edge_models, mutate)
    _both(cfg, models, needle)


def test_tls_to_a_plain_port(tmp_path, edge_models, blink_clip):
    from tests.support.broker import Mosquitto

    broker = Mosquitto(tmp_path / "b").start()
    try:
        cfg = write_config(
            tmp_path / "c.toml",
            {"device_id": "t"},
            camera={"type": "file", "path": str(blink_clip)},
            classifier={"model": edge_models[1]},
            mqtt={"host": "127.0.0.1", "port": broker.port, "outbox_path": str(tmp_path / "o.sqlite")},
            mqtt__tls={"enabled": True},
        )
        _assert_one_line(
            _cli("run", "--config", str(cfg), "--duration", "5", models=edge_models[0]), "TLS handshake", "8883"
        )
    finally:
        broker.stop()
