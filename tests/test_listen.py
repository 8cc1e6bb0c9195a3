"""`emotion-edge listen` against a real Mosquitto: de-duplication by id, gaps reported per device and stream."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid

import paho.mqtt.client as mqtt

from tests.support.broker import Mosquitto
from tests.support.daemon import ROOT


def _event(device, seq, pid=None):
    return {
        "schema_version": 1,
        "id": pid or str(uuid.uuid4()),
        "seq": seq,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "device_id": device,
        "camera": "cam0",
        "type": "appear",
        "track_id": seq,
        "emotion": "happy",
        "confidence": 0.9,
    }


def test_listen_deduplicates_and_reports_gaps(tmp_path):
    broker = Mosquitto(tmp_path / "b").start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    status = {"schema_version": 1, "state": "online", "device_id": "cam-a", "timestamp": "2026-01-01T00:00:00.000Z"}
    pub.publish("emotion-edge/cam-a/status", json.dumps(status), qos=1, retain=True).wait_for_publish(5)
    csv_path, db_path = tmp_path / "ev.csv", tmp_path / "ev.sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge",
            "listen",
            "--host",
            "127.0.0.1",
            "--port",
            str(broker.port),
            "--json",
            "--duration",
            "60",
            "--count",
            "5",
            "--csv",
            str(csv_path),
            "--sqlite",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        first = proc.stdout.readline()  # the retained status: the listener is subscribed
        assert '"online"' in first, first
        a2 = _event("cam-a", 2)
        pub.publish(
            "emotion-edge/cam-a/summary", json.dumps({**_event("cam-a", 1), "counts": {}}), qos=1
        ).wait_for_publish(5)
        sent = [_event("cam-a", 1), a2, a2, _event("cam-a", 5), _event("cam-b", 1), _event("cam-b", 2)]
        for ev in sent:  # cam-a: a duplicate of 2, then 3 and 4 are missing; cam-b: complete
            pub.publish(f"emotion-edge/{ev['device_id']}/events", json.dumps(ev), qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        broker.stop()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in [first, *out.splitlines()]]
    events = [r["payload"] for r in records if r.get("topic", "").endswith("/events")]
    assert [(e["device_id"], e["seq"]) for e in events] == [
        ("cam-a", 1),
        ("cam-a", 2),
        ("cam-a", 5),
        ("cam-b", 1),
        ("cam-b", 2),
    ]
    gaps = [r["gap"] for r in records if "gap" in r]
    assert gaps == [{"device_id": "cam-a", "stream": "events", "first": 3, "last": 4, "missing": 2}]
    assert "cam-a events: 3 received, 1 duplicate(s) dropped, 2 missing in 1 gap(s)" in err
    assert "cam-b events: 2 received, 0 duplicate(s) dropped, 0 missing in 0 gap(s)" in err
    assert "cam-a summary: 1 received" in err  # summaries have their own sequence: no false gap
    assert len(csv_path.read_text().splitlines()) == 1 + 5
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM events").fetchone()[0] == 5
