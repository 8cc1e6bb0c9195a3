"""The daemon speaks systemd's notify protocol over a real NOTIFY_SOCKET: READY, WATCHDOG, STATUS, STOPPING."""

from __future__ import annotations

import socket
import time

from tests.support.daemon import Daemon, write_config


def _receive(sock, seconds: float, stop_when_quiet: bool) -> list[tuple[float, str]]:
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            if stop_when_quiet:
                break
    return got


def test_notify_protocol(tmp_path, edge_models, blink_clip):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    cfg = write_config(
        tmp_path / "c.toml",
        {"device_id": "t", "publisher": "stdout", "stats_interval_s": 1.0},
        camera={"type": "file", "path": str(blink_clip)},
        classifier={"model": edge_models[1]},
    )
    daemon = Daemon(cfg, edge_models[0], env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}).start()
    got = _receive(sock, 5.0, stop_when_quiet=False)
    rc, _, err = daemon.terminate()
    got += _receive(sock, 3.0, stop_when_quiet=True)
    sock.close()
    assert rc == 0, err
    msgs = [m for _, m in got]
    assert any(m.startswith("READY=1") for m in msgs)
    pings = [t for t, m in got if m == "WATCHDOG=1"]
    assert len(pings) >= 4  # every ~0.5 s (half of WATCHDOG_USEC) for ~4 s
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) < 1.0  # never as long as the watchdog timeout
    assert any(m.startswith("STATUS=") and "fps" in m for m in msgs)
    assert msgs[-1] == "STOPPING=1"
