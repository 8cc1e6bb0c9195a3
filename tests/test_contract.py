"""The MQTT contract as subscribers see it, against a real Mosquitto: one identity per camera, retained state that
is true after restarts and outages, per-stream sequence numbers, Home Assistant discovery done as HA expects."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np

from tests.conftest import write_clip
from tests.support.broker import Mosquitto, Recorder
from tests.support.daemon import Daemon, write_config


def _cfg(tmp_path, name, models, clip, port, top=None, **tables):
    base = {
        "camera": {"type": "file", "path": str(clip), "loop": True},
        "classifier": {"model": models[1]},
        "tracking": {"min_confidence": 0.0, "min_duration_s": 0.0, "max_missing_s": 0.15},
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "outbox_path": str(tmp_path / f"{name}.sqlite"),
            "reconnect_min_s": 1,
            "reconnect_max_s": 1,
            "connect_timeout_s": 3.0,
        },
    }
    for key, value in tables.items():
        base[key] = {**base.get(key, {}), **value}
    return write_config(tmp_path / f"{name}.toml", {"stats_interval_s": 1.0, **(top or {})}, **base)


def _state(rec, device):
    states = [p for p in rec.payloads(f"/{device}/state")]
    return states[-1] if states else None


def test_two_cameras_with_default_identity_never_collide(tmp_path, edge_models, blink_clip):
    """Two emotion-edge@<name> instances with no device_id: own topics, client ids, seq streams and HA devices."""
    broker = Mosquitto(tmp_path / "b").start()
    rec = Recorder(broker.port).start()
    daemons = [
        Daemon(
            _cfg(
                tmp_path,
                name,
                edge_models,
                blink_clip,
                broker.port,
                top={"summary_interval_s": 2.0},
                homeassistant={"enabled": True},
            ),
            edge_models[0],
            env={"EMOTION_EDGE_INSTANCE": name},
        ).start()
        for name in ("cam0", "cam1")
    ]
    try:
        time.sleep(8)
        for d in daemons:
            rc, _, err = d.terminate()
            assert rc == 0, err[-2000:]
    finally:
        rec.stop()
        broker.stop()
    import socket

    host = socket.gethostname().split(".")[0]
    for name in ("cam0", "cam1"):
        statuses = [p["state"] for p in rec.payloads(f"/{host}-{name}/status")]
        assert statuses[0] == "online" and statuses[-1] == "stopped" and statuses.count("offline") == 0, statuses
        events = rec.payloads(f"/{host}-{name}/events")
        assert events and all(e["camera"] == name and e["device_id"] == f"{host}-{name}" for e in events)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # contiguous, with summaries on
        assert [s["seq"] for s in rec.payloads(f"/{host}-{name}/summary")][:2] == [1, 2]
    configs = [t for t, _, retained in rec.messages if t.startswith("homeassistant/") and t.endswith("/config")]
    assert any(f"{host}_cam0" in t.replace("-", "_") for t in configs) and any(
        f"{host}_cam1" in t.replace("-", "_") for t in configs
    )


def test_same_identity_twice_is_refused(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "b").start()
    try:
        first = Daemon(
            _cfg(tmp_path, "a", edge_models, blink_clip, broker.port, top={"device_id": "door"}), edge_models[0]
        ).start()
        time.sleep(3)
        rc, _, err = Daemon(
            _cfg(tmp_path, "b", edge_models, blink_clip, broker.port, top={"device_id": "door"}), edge_models[0]
        ).run_to_end(timeout=60)
        lines = [line for line in err.splitlines() if line.startswith("emotion-edge: error:")]
        assert rc == 2 and len(lines) == 1 and "already publishes as" in lines[0] and "device_id" in lines[0], err[
            -2000:
        ]
        assert first.proc.poll() is None
        assert first.terminate()[0] == 0
    finally:
        broker.stop()


def _empty_clip(tmp_path):
    return write_clip(tmp_path / "empty.avi", [np.full((480, 640, 3), 90, np.uint8) for _ in range(30)])


def _face_clip(tmp_path, astronaut):
    head = cv2.resize(astronaut[20:260, 110:350], (220, 220))
    frames = []
    for _ in range(30):
        f = np.full((480, 640, 3), 90, np.uint8)
        f[120:340, 200:420] = head
        frames.append(f)
    return write_clip(tmp_path / "face.avi", frames)


def test_retained_state_is_true_after_restart_outage_and_broker_loss(tmp_path, edge_models, astronaut):
    broker = Mosquitto(tmp_path / "b").start()
    face, empty = _face_clip(tmp_path, astronaut), _empty_clip(tmp_path)
    rec = Recorder(broker.port).start()
    try:
        d = Daemon(
            _cfg(tmp_path, "s", edge_models, face, broker.port, top={"device_id": "hall"}), edge_models[0]
        ).start()
        rec.wait_for(lambda r: (_state(r, "hall") or {}).get("faces") == 1, what="state with one face")
        d.kill()  # a crash while a face was showing
        # restarted on an empty scene: the retained state must not keep the face of the last run
        d = Daemon(
            _cfg(tmp_path, "s", edge_models, empty, broker.port, top={"device_id": "hall"}), edge_models[0]
        ).start()
        rec.wait_for(
            lambda r: (_state(r, "hall") or {}).get("faces") == 0, timeout=15, what="state reset after restart"
        )
        d.terminate()
        d = Daemon(
            _cfg(tmp_path, "s", edge_models, face, broker.port, top={"device_id": "hall"}), edge_models[0]
        ).start()
        rec.wait_for(lambda r: (_state(r, "hall") or {}).get("faces") == 1, what="one face again")
        # broker restart without persistence: its retained state is gone; the daemon restores it on reconnect
        broker.proc.kill()
        broker.proc.wait()
        for f in (tmp_path / "b").glob("*.db"):
            f.unlink()
        onlines = sum(1 for p in rec.payloads("/hall/status") if p["state"] == "online")
        broker.start()
        rec.wait_for(
            lambda r: sum(1 for p in r.payloads("/hall/status") if p["state"] == "online") > onlines,
            timeout=20,
            what="the daemon back online",
        )
        late = Recorder(broker.port, "emotion-edge/hall/state", client_id="late").start()
        late.wait_for(
            lambda r: any(retained for _, _, retained in r.messages), timeout=15, what="retained state restored"
        )
        retained = [json.loads(p) for _, p, r in late.messages if r]
        assert retained[-1]["faces"] == 1 and retained[-1]["dominant_emotion"] != "none"
        late.stop()
        assert d.terminate()[0] == 0
    finally:
        rec.stop()
        broker.stop()
    states = rec.payloads("/hall/state")
    assert all(s["device_id"] == "hall" and s["schema_version"] == 1 for s in states)


def test_home_assistant_discovery_as_ha_expects(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "b").start()
    rec = Recorder(broker.port, "homeassistant/#", client_id="ha").start()
    try:

        def porch(name: str):
            return _cfg(
                tmp_path,
                "h",
                edge_models,
                blink_clip,
                broker.port,
                top={"device_id": "porch"},
                camera={"name": name},
                homeassistant={"enabled": True},
            )

        cfg = porch("front")
        d = Daemon(cfg, edge_models[0]).start()
        rec.wait_for(lambda r: len(r.messages) >= 6, what="discovery configs")
        time.sleep(1)
        assert d.terminate()[0] == 0
        first = {t: json.loads(p) for t, p, _ in rec.messages if p}
        # renamed camera: what was announced for 'front' is removed (empty retained config), 'back' announced
        cfg = porch("back")
        d = Daemon(cfg, edge_models[0]).start()
        rec.wait_for(lambda r: sum(1 for t, p, _ in r.messages if not p) >= len(first), what="old configs removed")
        assert d.terminate()[0] == 0
        # disabled: everything announced is removed
        cfg = _cfg(
            tmp_path, "h", edge_models, blink_clip, broker.port, top={"device_id": "porch"}, camera={"name": "back"}
        )
        n_before = sum(1 for t, p, _ in rec.messages if not p)
        d = Daemon(cfg, edge_models[0]).start()
        rec.wait_for(
            lambda r: sum(1 for t, p, _ in r.messages if not p) >= n_before + len(first), what="configs withdrawn"
        )
        assert d.terminate()[0] == 0
    finally:
        rec.stop()
        broker.stop()
    labels = next(iter(first.values()))["device"]
    for topic, c in first.items():
        assert c["qos"] == 1 and c["has_entity_name"] and c["origin"]["name"] == "emotion-edge", topic
        assert c["device"] == labels and {"model", "sw_version", "identifiers"} <= set(c["device"])
        assert c["name"][0].isupper() and not c["name"][1:].isupper(), c["name"]  # sentence case
    by_key = {t.split("/")[-2]: c for t, c in first.items()}
    dominant = by_key["dominant_emotion"]
    assert dominant["device_class"] == "enum" and "none" in dominant["options"] and len(dominant["options"]) >= 3
    assert by_key["faces"]["state_class"] == "measurement"
    assert sum(1 for k in by_key if k.endswith("_faces")) >= 2  # one count per emotion
    assert "availability_topic" not in by_key["status"] and by_key["status"]["entity_category"] == "diagnostic"
    assert set(by_key["status"]["options"]) == {"online", "offline", "stopped"}
    assert by_key["emotion_event"]["event_types"] == ["appear", "change", "leave"]
    removed = [t for t, p, _ in rec.messages if not p]
    assert set(first) <= set(removed)
