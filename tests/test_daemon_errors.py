"""User mistakes end the daemon with one line naming the fix (exit 2, no traceback); faults are retried."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from tests.support.broker import Mosquitto, free_port, self_signed
from tests.support.daemon import Daemon, write_config


def _one_line(rc: int, err: str, *needles: str) -> str:
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("emotion-edge: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _cfg(tmp_path, edge_models, camera, mqtt=None, top=None):
    return write_config(
        tmp_path / "c.toml",
        {"device_id": "t", **(top or {})},
        camera=camera,
        classifier={"model": edge_models[1]},
        mqtt={
            "host": "127.0.0.1",
            "port": free_port(),
            "outbox_path": str(tmp_path / "o.sqlite"),
            "connect_timeout_s": 3.0,
            **(mqtt or {}),
        },
    )


def test_unknown_config_key(tmp_path, edge_models):
    cfg = write_config(tmp_path / "c.toml", {"device_id": "t"}, camera={"type": "demo", "pth": "/x"})
    rc, _, err = Daemon(cfg, edge_models[0]).run_to_end()
    _one_line(rc, err, "unknown config key 'camera.pth'", "did you mean 'camera.path'")


def test_missing_camera(tmp_path, edge_models):
    cfg = _cfg(tmp_path, edge_models, {"type": "opencv", "path": "/dev/video99"})
    rc, _, err = Daemon(cfg, edge_models[0]).run_to_end()
    _one_line(rc, err, "/dev/video99", "cannot be opened", "fix:")
    assert len(err.strip().splitlines()) == 1, err  # no OpenCV/FFmpeg/TFLite chatter around the one line


def test_corrupt_video(tmp_path, edge_models):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    rc, _, err = Daemon(_cfg(tmp_path, edge_models, {"type": "file", "path": str(bad)}), edge_models[0]).run_to_end()
    _one_line(rc, err, "bad.mp4", "corrupt")
    assert len(err.strip().splitlines()) == 1, err


def test_missing_model(tmp_path, edge_models):
    cfg = write_config(tmp_path / "c.toml", {"device_id": "t"}, classifier={"model": "multiclass9-resnet"})
    rc, _, err = Daemon(cfg, edge_models[0]).run_to_end()
    _one_line(rc, err, "multiclass9-resnet", "known:")


def test_tampered_model(tmp_path, edge_models, blink_clip):
    models = tmp_path / "models"
    shutil.copytree(edge_models[0], models, symlinks=True, ignore=shutil.ignore_patterns("*.npz"))
    manifest = json.loads((models / "manifest.json").read_text())
    f = models / manifest["models"][edge_models[1]]["variants"]["int8"]["file"]
    blob = bytearray(f.read_bytes())
    blob[100] ^= 0x55
    f.write_bytes(bytes(blob))
    rc, _, err = Daemon(_cfg(tmp_path, edge_models, {"type": "file", "path": str(blink_clip)}), models).run_to_end()
    _one_line(rc, err, "does not match its manifest", "reinstall")


def test_wrong_password(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "b", password=("edge", "right-pass")).start()
    pw = tmp_path / "pw"
    pw.write_text("wrong-pass\n")
    cfg = _cfg(
        tmp_path,
        edge_models,
        {"type": "file", "path": str(blink_clip)},
        mqtt={"port": broker.port, "username": "edge", "password_file": str(pw)},
    )
    try:
        rc, _, err = Daemon(cfg, edge_models[0]).run_to_end()
    finally:
        broker.stop()
    _one_line(rc, err, "refused the credentials", "password")


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_tls_failure_and_success(tmp_path, edge_models, blink_clip):
    tls = self_signed(tmp_path)
    broker = Mosquitto(tmp_path / "b", tls=tls).start()
    camera = {"type": "file", "path": str(blink_clip)}
    try:
        # The system CAs do not know the broker's self-signed certificate: a configuration error.
        cfg = write_config(
            tmp_path / "bad.toml",
            {"device_id": "t"},
            camera=camera,
            classifier={"model": edge_models[1]},
            mqtt={"host": "127.0.0.1", "port": broker.port, "outbox_path": str(tmp_path / "o1.sqlite")},
            mqtt__tls={"enabled": True},
        )
        rc, _, err = Daemon(cfg, edge_models[0]).run_to_end()
        _one_line(rc, err, "TLS handshake", "ca_file")
        # With the right CA it connects and runs.
        cfg = write_config(
            tmp_path / "ok.toml",
            {"device_id": "t"},
            camera=camera,
            classifier={"model": edge_models[1]},
            mqtt={"host": "127.0.0.1", "port": broker.port, "outbox_path": str(tmp_path / "o2.sqlite")},
            mqtt__tls={"enabled": True, "ca_file": str(tls["cert"])},
        )
        d = Daemon(cfg, edge_models[0]).start()
        import time

        time.sleep(3)
        rc, _, err = d.terminate()
        assert rc == 0, err
        assert "connected to 127.0.0.1" in err
    finally:
        broker.stop()


def test_password_never_in_config(tmp_path, edge_models):
    cfg = write_config(tmp_path / "c.toml", {"device_id": "t"}, mqtt={"password": "hunter2"})
    rc, _, err = Daemon(cfg, edge_models[0]).run_to_end()
    _one_line(rc, err, "unknown config key 'mqtt.password'", "password_file")


def test_check_config_ok_and_example_config_parses(tmp_path, edge_models, blink_clip, run):
    import os
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMOTION_EDGE_MODELS": str(edge_models[0])}
    example = subprocess.run([sys.executable, "-m", "edge", "example-config"], capture_output=True, text=True, env=env)
    assert example.returncode == 0
    (tmp_path / "ex.toml").write_text(example.stdout)
    from edge.config import load_config

    assert load_config(tmp_path / "ex.toml").camera.type == "demo"
    cfg = _cfg(tmp_path, edge_models, {"type": "file", "path": str(blink_clip)})
    ok = subprocess.run(
        [sys.executable, "-m", "edge", "check-config", "--config", str(cfg)], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0, ok.stderr
    assert "config ok" in ok.stdout and edge_models[1] in ok.stdout


def test_shipped_example_config_is_current():
    """deploy/config.example.toml is generated from the config classes ('emotion-edge example-config')."""
    from edge.config import example_toml

    assert (ROOT / "deploy" / "config.example.toml").read_text() == example_toml()
