"""Home Assistant's own MQTT schemas accept every discovery payload (side venv: tests/homeassistant/ha-env.sh)."""

from __future__ import annotations

import json
import subprocess

import pytest

from edge.config import Config, HomeAssistantConfig
from edge.publish.base import topics
from edge.publish.homeassistant import Discovery
from tests.conftest import ROOT

HA_PY = ROOT / ".venv-ha" / "bin" / "python"


def test_discovery_payloads_pass_home_assistants_schemas(tmp_path, edge_models):
    if not HA_PY.exists():
        pytest.skip("no Home Assistant side environment; build it with 'bash tests/homeassistant/ha-env.sh'")
    from edge.core.manifest import Manifest

    labels = Manifest(edge_models[0]).entry(edge_models[1]).labels
    cfg = Config(device_id="porch", homeassistant=HomeAssistantConfig(enabled=True))
    configs = Discovery(
        cfg, topics(cfg.mqtt.topic_prefix, cfg.device_id), labels, edge_models[1], tmp_path, has_temperature=True
    ).configs()
    proc = subprocess.run(
        [str(HA_PY), str(ROOT / "tests" / "homeassistant" / "validate_discovery.py")],
        input=json.dumps(configs),
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert f"{len(configs)} valid, 0 rejected" in proc.stdout


def _ha_config(config_dir, port: int) -> None:
    """A minimal Home Assistant: the MQTT integration as a config entry (discovery on) and mqtt_statestream, which
    publishes every entity's state and attributes back to MQTT, so the test reads what HA shows without a token."""
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(
        "homeassistant:\n  name: emotion-edge test\n  time_zone: UTC\n"
        "mqtt_statestream:\n  base_topic: hastates\n  publish_attributes: true\n"
    )
    entry = {
        "entry_id": "0123456789abcdef0123456789abcdef",
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": "127.0.0.1",
        "data": {"broker": "127.0.0.1", "port": port, "discovery": True},
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    (config_dir / ".storage" / "core.config_entries").write_text(
        json.dumps({"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}})
    )


def test_real_home_assistant_shows_the_camera(tmp_path, edge_models, blink_clip):
    """A real Home Assistant core against a real Mosquitto: entities appear from discovery, follow the daemon's state,
    go unavailable on SIGTERM (status 'stopped') and on SIGKILL (last will, status 'offline'), and events fire."""
    import time

    from tests.support.broker import Mosquitto, Recorder
    from tests.support.daemon import Daemon, write_config

    hass = ROOT / ".venv-ha" / "bin" / "hass"
    if not hass.exists():
        pytest.skip("no Home Assistant side environment; build it with 'bash tests/homeassistant/ha-env.sh'")
    broker = Mosquitto(tmp_path / "b").start()
    ha_dir = tmp_path / "ha"
    _ha_config(ha_dir, broker.port)
    rec = Recorder(broker.port, "hastates/#", client_id="ha-states").start()
    ha = subprocess.Popen(
        [str(hass), "-c", str(ha_dir), "--skip-pip"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    node = "emotion_edge_porch_front"

    def state(entity: str, attr: str = "state"):
        with rec.lock:
            vals = [p.decode() for t, p, _ in rec.messages if t == f"hastates/{entity.replace('.', '/')}/{attr}"]
        return json.loads(vals[-1]) if vals and vals[-1][:1] in '"[{0123456789' else (vals[-1] if vals else None)

    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "porch", "stats_interval_s": 1.0},
        camera={"type": "file", "path": str(blink_clip), "loop": True, "name": "front"},
        classifier={"model": edge_models[1]},
        tracking={"min_confidence": 0.0, "min_duration_s": 0.0, "max_missing_s": 0.15},
        mqtt={"host": "127.0.0.1", "port": broker.port, "outbox_path": str(tmp_path / "o.sqlite")},
        homeassistant={"enabled": True},
    )
    try:
        time.sleep(1)
        daemon = Daemon(cfg, edge_models[0]).start()
        rec.wait_for(
            lambda r: state(f"sensor.{node}_status") == "online", timeout=120, what="HA's status sensor online"
        )
        rec.wait_for(
            lambda r: state(f"sensor.{node}_dominant_emotion") not in (None, "unavailable", "unknown"),
            timeout=30,
            what="HA's dominant-emotion sensor",
        )
        rec.wait_for(
            lambda r: state(f"event.{node}_emotion_event", "event_type") in ("appear", "change", "leave"),
            timeout=30,
            what="HA's event entity firing",
        )
        rec.wait_for(
            lambda r: (
                isinstance(state(f"sensor.{node}_processing_rate"), (int, float))
                and isinstance(state(f"sensor.{node}_faces"), int)
            ),
            timeout=30,
            what="faces and processing rate",
        )
        assert isinstance(
            state(f"sensor.{node}_dominant_emotion", "faces"), int
        )  # the attributes we chose, and only those
        assert state(f"sensor.{node}_dominant_emotion", "probabilities") is None
        assert daemon.terminate()[0] == 0
        rec.wait_for(
            lambda r: (
                state(f"sensor.{node}_status") == "stopped"
                and state(f"sensor.{node}_dominant_emotion") == "unavailable"
            ),
            timeout=30,
            what="stopped / unavailable",
        )
        daemon = Daemon(cfg, edge_models[0]).start()
        rec.wait_for(lambda r: state(f"sensor.{node}_status") == "online", timeout=60, what="online again")
        daemon.kill()  # a crash: the broker publishes the last will
        rec.wait_for(
            lambda r: state(f"sensor.{node}_status") == "offline" and state(f"sensor.{node}_faces") == "unavailable",
            timeout=60,
            what="offline after a crash",
        )
        log_path = ha_dir / "home-assistant.log"
        log = log_path.read_text() if log_path.exists() else ""  # before HA's own shutdown adds its warnings
    finally:
        ha.terminate()
        try:
            ha.wait(timeout=60)
        except subprocess.TimeoutExpired:
            ha.kill()
        rec.stop()
        broker.stop()
    problems = [line for line in log.splitlines() if ("ERROR" in line or "WARNING" in line) and "mqtt" in line.lower()]
    assert not problems, "\n".join(problems[:10])
