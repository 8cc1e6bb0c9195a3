"""A real Mosquitto broker on a free loopback port, and a recording MQTT subscriber."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest


def self_signed(folder: Path, name: str = "localhost") -> dict[str, Path]:
    """A self-signed certificate for `name` (also valid for 127.0.0.1) and its key, made with openssl."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=IP:127.0.0.1,DNS:{name}"],
        check=True,
        capture_output=True,
    )
    return {"cert": cert, "key": key}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, up: bool = True, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'}")


class Mosquitto:
    """mosquitto -c <generated conf>; persistence on so durable subscriptions survive a restart."""

    def __init__(
        self, workdir: Path, port: int | None = None, password: tuple[str, str] | None = None, tls: dict | None = None
    ):
        if not shutil.which("mosquitto"):
            pytest.fail(
                "mosquitto is not installed; run 'bash tests/run.sh' (it installs it) or apt-get install mosquitto"
            )
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            f"log_dest file {self.dir}/mosquitto.log",
            "log_type all",
        ]
        if os.geteuid() == 0:  # as root mosquitto drops to user 'mosquitto', who cannot read pytest's 0700 tmp dirs
            lines.append("user root")
        if password:
            pw = self.dir / "passwd"
            subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), *password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.proc.kill()
            err = self.proc.stderr.read().decode()[-500:] if self.proc.stderr else ""
            raise RuntimeError(f"mosquitto did not start: {err}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # clean stop: the persistence file is written
            self.proc.wait(timeout=10)
        wait_port(self.port, up=False)


class Recorder:
    """Subscribes with a persistent session (clean_session=False, QoS 1) and records every message."""

    def __init__(
        self, port: int, topic: str = "#", client_id: str = "test-recorder", auth: tuple[str, str] | None = None
    ):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if auth:
            self.c.username_pw_set(*auth)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(1, 1)
        self.port = port

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def start(self) -> Recorder:
        self.c.connect("127.0.0.1", self.port, keepalive=5)
        self.c.loop_start()
        return self

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()

    def payloads(self, suffix: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, pred, timeout: float = 20.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; got topics {[t for t, _, _ in self.messages][-20:]}")
