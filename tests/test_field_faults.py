"""Faults as they happen in the field, after READY: a camera that goes away or blocks, a broker killed at random,
a daemon restarted while the broker is down. Nothing is fatal; every fault is logged once per episode."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from tests.support.broker import Mosquitto, Recorder, free_port
from tests.support.daemon import ROOT, Daemon, write_config

MJPEG = ROOT / "tests" / "system" / "mjpeg_server.py"


def _jpegs(folder: Path, astronaut, n: int = 20) -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        frame = cv2.resize(astronaut, (320, 240))
        frame[:8, : 8 + i] = 255  # frames differ a little
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame)
    return folder


def _serve(port: int, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(MJPEG), "--port", str(port), "--dir", str(folder), "--fps", "15"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mjpeg server did not start")


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_usb_type_camera_lost_after_start_comes_back(tmp_path, edge_models, astronaut):
    """camera.type = "opencv" (the USB/V4L2 type) opened on an MJPEG URL whose server goes away for 6 s."""
    port = free_port()
    server = _serve(port, _jpegs(tmp_path / "jpg", astronaut))
    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "usb", "publisher": "stdout", "stats_interval_s": 1.0},
        camera={"type": "opencv", "path": f"http://127.0.0.1:{port}/stream.mjpg", "reconnect_max_s": 1.0},
        classifier={"model": edge_models[1]},
    )
    daemon = Daemon(cfg, edge_models[0]).start()
    try:
        time.sleep(4)
        server.kill()
        server.wait()
        time.sleep(6)
        assert daemon.proc.poll() is None, "the daemon exited when its camera went away"
        server = _serve(port, tmp_path / "jpg")
        time.sleep(6)
        rc, out, err = daemon.terminate()
    finally:
        server.kill()
    assert rc == 0, err[-2000:]
    stats = [m["payload"] for m in _lines(out) if m["topic"].endswith("/stats")]
    states = [s["camera_health"]["state"] for s in stats]
    assert "lost" in states and states[-1] == "ok", states
    assert stats[-1]["camera_reconnects"] == 1 and stats[-1]["camera_health"]["reconnect_attempts"] >= 2
    assert stats[-2]["processed_fps"] > 0  # frames flow again
    # logged once when lost and once when recovered, not once per retry
    assert sum("retrying (logged again" in line for line in err.splitlines()) == 1, err[-3000:]
    assert sum("recovered after" in line for line in err.splitlines()) == 1, err[-3000:]
    assert "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_blocked_camera_read_is_abandoned_then_watchdog_stops(tmp_path, edge_models, astronaut):
    """A reader blocked inside OpenCV (a FIFO whose writer stalls, like a wedged V4L2 driver): the frame loop keeps
    running, replaces the reader twice, then withholds WATCHDOG=1 so systemd restarts the process."""
    fifo = tmp_path / "cam.mjpeg"
    os.mkfifo(fifo)
    jpg = cv2.imencode(".jpg", cv2.resize(astronaut, (320, 240)))[1].tobytes()
    stall = threading.Event()
    stalled_at = []

    def writer():
        with open(fifo, "wb") as f:
            for _ in range(6_000_000 // len(jpg) + 1):  # enough for FFmpeg's probe
                f.write(jpg)
            for _ in range(30):
                f.write(jpg)
                f.flush()
                time.sleep(0.1)
            stalled_at.append(time.monotonic())
            stall.wait(60)  # keeps the FIFO open and silent: reads block

    threading.Thread(target=writer, daemon=True).start()
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "hung", "publisher": "stdout", "stats_interval_s": 1.0},
        camera={"type": "opencv", "path": str(fifo), "frame_timeout_s": 2.0},
        classifier={"model": edge_models[1]},
    )
    daemon = Daemon(cfg, edge_models[0], env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}).start()
    got = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            got.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            pass
    rc, out, err = daemon.terminate(timeout=30)
    stall.set()
    sock.close()
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    assert any(m.startswith("READY=1") for _, m in got)
    pings = [t for t, m in got if m == "WATCHDOG=1"]
    assert stalled_at and pings and pings[0] < stalled_at[0]
    # two reader replacements (2 s each), then silence: systemd (WatchdogSec) would restart the service
    assert stalled_at[0] + 4 < pings[-1] < stalled_at[0] + 12, pings[-1] - stalled_at[0]
    assert deadline - pings[-1] > 10
    assert err.count("abandoning the blocked reader") >= 1 and "stopping watchdog pings" in err
    assert any("camera reader blocked" in m for _, m in got)  # STATUS= says what is wrong


def _fast_mqtt(port: int, outbox) -> dict:
    """A broker on this port, retried every second, with its own outbox."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "outbox_path": str(outbox),
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "connect_timeout_s": 2.0,
    }


def _accounted(events: list[dict]) -> list[int]:
    seen: dict[str, int] = {}
    seqs: list[int] = []
    for e in events:
        if e["id"] in seen:
            assert seen[e["id"]] == e["seq"]  # a redelivery is the same event
            continue
        seen[e["id"]] = e["seq"]
        seqs.append(e["seq"])
    return seqs


def test_broker_killed_at_random_and_daemon_restarted_while_down(tmp_path, edge_models, blink_clip):
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port).start()
    rec = Recorder(port).start()
    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "chaos", "stats_interval_s": 1.0, "summary_interval_s": 2.0},
        camera={"type": "file", "path": str(blink_clip), "loop": True},
        classifier={"model": edge_models[1]},
        tracking={"min_confidence": 0.0, "min_duration_s": 0.0, "max_missing_s": 0.15},
        mqtt=_fast_mqtt(port, tmp_path / "outbox.sqlite"),
    )
    rng = random.Random(7)
    daemon = Daemon(cfg, edge_models[0]).start()
    restarts = 0
    try:
        rec.wait_for(lambda r: r.payloads("/events"), what="first event")
        for k in range(5):
            time.sleep(rng.uniform(1.5, 3.0))
            broker.proc.send_signal(signal.SIGKILL)
            broker.proc.wait()
            if k < 3:  # the daemon restarted while the broker is down: its queue is on disk
                rc, _, err = daemon.terminate()
                assert rc == 0, err[-2000:]
                daemon = Daemon(cfg, edge_models[0]).start()
                restarts += 1
            time.sleep(rng.uniform(1.0, 2.5))
            broker.start()
            time.sleep(1.5)  # the recorder is back before the next kill
        time.sleep(3)
        rc, out, err = daemon.terminate()
        assert rc == 0, err[-2000:]
        rec.wait_for(
            lambda r: [p["state"] for p in r.payloads("/status")][-1:] == ["stopped"], timeout=30, what="stopped"
        )
    finally:
        rec.stop()
        broker.stop()
    assert restarts == 3
    events = _accounted(rec.payloads("/events"))
    summaries = _accounted(rec.payloads("/summary"))
    # each stream has its own contiguous sequence across 3 restarts and 5 broker kills: nothing lost, nothing reused
    assert sorted(events) == list(range(1, len(events) + 1)) and len(events) >= 10, events
    assert sorted(summaries) == list(range(1, len(summaries) + 1)) and len(summaries) >= 3, summaries
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "reply", [b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"], ids=["closes-after-connect", "speaks-http"]
)
def test_a_server_that_is_not_a_broker_is_logged_once(tmp_path, edge_models, blink_clip, reply):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            try:
                conn.recv(1024)
                conn.sendall(reply)
            except OSError:
                pass
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "notmqtt", "stats_interval_s": 1.0},
        camera={"type": "file", "path": str(blink_clip), "loop": True},
        classifier={"model": edge_models[1]},
        tracking={"min_confidence": 0.0, "min_duration_s": 0.0, "max_missing_s": 0.15},
        mqtt=_fast_mqtt(port, tmp_path / "o.sqlite"),
    )
    daemon = Daemon(cfg, edge_models[0]).start()
    time.sleep(8)
    rc, _, err = daemon.terminate()
    srv.close()
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    assert len(accepted) >= 3  # paho kept retrying with its backoff
    faults = [line for line in err.splitlines() if f"broker 127.0.0.1:{port}:" in line and "retrying" in line]
    assert len(faults) == 1, err[-3000:]  # visible, and once per outage, not once per retry
    assert "event(s) remain in the outbox" in err  # nothing was lost: the events wait on disk
