"""The daemon against a real Mosquitto with real models and real video files."""

from __future__ import annotations

import json
import time

from tests.support.broker import Mosquitto, Recorder, free_port
from tests.support.daemon import Daemon, write_config

TOPIC = "emotion-edge/testcam"


def _config(tmp_path, models, clip, port, **over):
    mqtt = {
        "host": "127.0.0.1",
        "port": port,
        "outbox_path": str(tmp_path / "outbox.sqlite"),
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "connect_timeout_s": 3.0,
        **over.pop("mqtt", {}),
    }
    tables = {
        "camera": {"type": "file", "path": str(clip), "name": "door", "loop": True},
        "classifier": {"model": models[1]},
        "tracking": {"min_confidence": 0.0, "min_duration_s": 0.0, "max_missing_s": 0.15},
        "mqtt": mqtt,
    }
    for key, value in over.pop("tables", {}).items():
        tables[key] = {**tables.get(key, {}), **value}
    top = {"device_id": "testcam", "stats_interval_s": 1.0, **over}
    return write_config(tmp_path / "config.toml", top, **tables)


def _events(rec: Recorder) -> list[dict]:
    return rec.payloads("/events")


def _statuses(rec: Recorder) -> list[str]:
    return [p["state"] for p in rec.payloads("/status")]


def test_events_schema_and_status_lifecycle(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "broker").start()
    rec = Recorder(broker.port).start()
    daemon = Daemon(_config(tmp_path, edge_models, blink_clip, broker.port), edge_models[0]).start()
    try:
        rec.wait_for(lambda r: len(_events(r)) >= 4 and r.payloads("/stats"), what="4 events and stats")
        assert _statuses(rec)[0] == "online"
        rc, out, err = daemon.terminate()
        assert rc == 0, err
        rec.wait_for(lambda r: _statuses(r)[-1:] == ["stopped"], what="stopped status")
    finally:
        rec.stop()
        broker.stop()
    ev = _events(rec)[0]
    for key in (
        "schema_version",
        "id",
        "seq",
        "timestamp",
        "device_id",
        "camera",
        "type",
        "track_id",
        "emotion",
        "confidence",
        "probabilities",
        "box",
        "model",
    ):
        assert key in ev, key
    assert ev["schema_version"] == 1 and ev["camera"] == "door" and ev["device_id"] == "testcam"
    assert ev["timestamp"].endswith("Z") and ev["model"]["name"] == edge_models[1]
    assert ev["type"] == "appear" and ev["emotion"] in ev["probabilities"]
    assert all(0.0 <= v <= 1.0 for v in ev["box"]) and ev["box"][0] < ev["box"][2]
    assert abs(sum(ev["probabilities"].values()) - 1.0) < 0.02
    types = [e["type"] for e in _events(rec)]
    assert "leave" in types  # the face disappears every cycle
    stats = rec.payloads("/stats")[0]
    for key in (
        "capture_fps",
        "processed_fps",
        "skipped_frames",
        "latency_ms",
        "faces_per_frame",
        "model",
        "uptime_s",
        "outbox_depth",
    ):
        assert key in stats, key
    assert {"p50", "p95"} <= set(stats["latency_ms"]["classify"])
    assert not any("jpg" in str(p) or "image" in p for p in ev)  # no image field, ever


def test_last_will_offline_when_killed(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "broker").start()
    rec = Recorder(broker.port).start()
    daemon = Daemon(_config(tmp_path, edge_models, blink_clip, broker.port), edge_models[0]).start()
    try:
        rec.wait_for(lambda r: "online" in _statuses(r), what="online")
        daemon.kill()
        rec.wait_for(lambda r: _statuses(r)[-1:] == ["offline"], what="last-will offline")
    finally:
        rec.stop()
        broker.stop()


def _assert_complete(events: list[dict]) -> list[int]:
    """De-duplicated by id: sequence numbers 1..N, each once, in arrival order."""
    seen, seqs = set(), []
    for e in events:
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        seqs.append(e["seq"])
    assert seqs == list(range(1, len(seqs) + 1)), f"gap or reorder: {seqs}"
    return seqs


def test_broker_outage_loses_nothing(tmp_path, edge_models, blink_clip):
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port).start()
    rec = Recorder(port).start()
    daemon = Daemon(_config(tmp_path, edge_models, blink_clip, port), edge_models[0]).start()
    try:
        rec.wait_for(lambda r: len(_events(r)) >= 3, what="first events")
        broker.stop()
        time.sleep(4.0)  # events keep coming: ~2 per face cycle, into the outbox
        broker.start()
        rec.wait_for(lambda r: len(_events(r)) >= 14, timeout=30, what="events after the outage")
        rc, _, err = daemon.terminate()
        assert rc == 0, err
        rec.wait_for(lambda r: _statuses(r)[-1:] == ["stopped"], what="stopped")
    finally:
        rec.stop()
        broker.stop()
    seqs = _assert_complete(_events(rec))
    assert len(seqs) >= 14


def test_daemon_restart_while_broker_down(tmp_path, edge_models, blink_clip):
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port).start()
    rec = Recorder(port).start()
    cfg = _config(tmp_path, edge_models, blink_clip, port)
    first = Daemon(cfg, edge_models[0]).start()
    try:
        rec.wait_for(lambda r: len(_events(r)) >= 2, what="first events")
        broker.stop()
        time.sleep(2.5)
        rc, _, err = first.terminate()  # events produced meanwhile stay in the on-disk outbox
        assert rc == 0, err
        second = Daemon(cfg, edge_models[0]).start()
        time.sleep(2.5)
        broker.start()
        rec.wait_for(lambda r: len(_events(r)) >= 10, timeout=30, what="events after restart")
        rc, _, err = second.terminate()
        assert rc == 0, err
    finally:
        rec.stop()
        broker.stop()
    _assert_complete(_events(rec))


def test_outbox_bound_drops_oldest_and_counts(tmp_path, edge_models, blink_clip):
    port = free_port()
    cfg = _config(tmp_path, edge_models, blink_clip, port, mqtt={"outbox_max_events": 3})
    daemon = Daemon(cfg, edge_models[0]).start()  # no broker at all
    time.sleep(5.0)
    rc, _, err = daemon.terminate()
    assert rc == 0, err
    from edge.publish.outbox import Outbox

    box = Outbox(tmp_path / "outbox.sqlite")
    assert box.depth() == 3 and box.dropped() >= 1
    seqs = [row[0] for row in box.pending(0, 10)]
    assert seqs == sorted(seqs) and seqs[-1] == 3 + box.dropped()  # the newest are kept


def test_aggregate_only_publishes_no_faces(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "broker").start()
    rec = Recorder(broker.port).start()
    cfg = _config(tmp_path, edge_models, blink_clip, broker.port, aggregate_only=True, summary_interval_s=1.0)
    daemon = Daemon(cfg, edge_models[0]).start()
    try:
        rec.wait_for(lambda r: len(r.payloads("/summary")) >= 2, what="summaries")
        daemon.terminate()
    finally:
        rec.stop()
        broker.stop()
    assert _events(rec) == []
    summaries = rec.payloads("/summary")
    s = summaries[0]
    assert s["schema_version"] == 1 and "box" not in s and set(s["counts"]) == set(s["tracks"])
    for s in summaries:  # every classified face is counted once, under exactly one emotion
        assert sum(s["counts"].values()) == s["faces_seen"]
    assert sum(s["faces_seen"] for s in summaries) > 0  # the clip has a face: the aggregates are not empty


def test_home_assistant_discovery(tmp_path, edge_models, blink_clip):
    broker = Mosquitto(tmp_path / "broker").start()
    rec = Recorder(broker.port).start()
    cfg = _config(tmp_path, edge_models, blink_clip, broker.port, tables={"homeassistant": {"enabled": True}})
    daemon = Daemon(cfg, edge_models[0]).start()
    try:
        rec.wait_for(lambda r: len(r.payloads("/config")) >= 2, what="discovery configs")
        late = Recorder(broker.port, "homeassistant/#", client_id="late-joiner").start()  # like HA starting later
        late.wait_for(lambda r: len(r.messages) >= 2, what="retained discovery configs")
        late.stop()
        daemon.terminate()
    finally:
        rec.stop()
        broker.stop()
    configs = {t: json.loads(p) for t, p, retained in late.messages if retained}
    sensor = next(p for t, p in configs.items() if t.startswith("homeassistant/sensor/"))
    event = next(p for t, p in configs.items() if t.startswith("homeassistant/event/"))
    assert sensor["state_topic"] == f"{TOPIC}/state" and sensor["availability_topic"] == f"{TOPIC}/status"
    assert event["state_topic"] == f"{TOPIC}/events" and set(event["event_types"]) == {"appear", "change", "leave"}
    assert any(p.get("dominant_emotion") for p in rec.payloads("/state"))
