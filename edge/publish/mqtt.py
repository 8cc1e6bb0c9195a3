"""MQTT publisher (paho-mqtt >= 2): versioned topics, retained status with last will, durable outbox.

- status (retained, QoS 1): `online` only after a successful CONNACK; last will `offline`; `stopped`
  on clean shutdown.
- events and summary (QoS 1) go through the SQLite outbox: stored first, published in order when
  connected, deleted on PUBACK. Within a connection paho retransmits its in-flight messages after a
  reconnect; after a restart everything still in the outbox is sent again from the oldest, so a
  consumer may see a duplicate id (de-duplicate by `id`) but never a gap.
- stats (QoS 0) and state (retained) are best effort.
- Reconnects use paho's own exponential backoff (reconnect_min_s .. reconnect_max_s).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.config import Config, mqtt_password
from edge.core.errors import UserError
from edge.core.payload import status_payload
from edge.faults import FaultState

from .base import topics
from .outbox import Outbox, default_outbox_path

log = logging.getLogger(__name__)

AUTH_FAILURES = {"Bad user name or password", "Not authorized"}
WINDOW = 100  # outbox messages handed to paho but not yet acknowledged
PUBACK_PATIENCE_S = 30.0  # in-flight messages older than this: the broker is not acknowledging (logged once)


class MQTTPublisher:
    def __init__(self, cfg: Config, labels: tuple[str, ...] = (), model: str = ""):
        self.cfg = cfg
        self.m = cfg.mqtt
        self.topics = topics(self.m.topic_prefix, cfg.device_id)
        self.outbox = Outbox(self.m.outbox_path or default_outbox_path(), self.m.outbox_max_events)
        self.connected = threading.Event()
        self.first_connack = threading.Event()
        self.refused: str | None = None
        self.first_connack_ok = False
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.inflight: list[tuple[mqtt.MQTTMessageInfo, int]] = []  # handed to paho, not yet acknowledged
        self.last_sent = 0
        self.connects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.link = FaultState(f"broker {self.m.host}:{self.m.port}")  # connect/CONNACK/disconnect faults
        self.acks = FaultState(f"broker {self.m.host}:{self.m.port} acknowledgements")
        self.sender_health = FaultState("outbox sender")
        self.inflight_since: dict[int, float] = {}
        self.client = self._client()
        self.sender = threading.Thread(target=self._send_loop, name="mqtt-outbox", daemon=True)
        self.retained: dict[str, str] = {}  # newest retained payload per kind: (re)published on every connect
        self.discovery = None
        if cfg.homeassistant.enabled:
            from .homeassistant import Discovery

            self.discovery = Discovery(
                cfg,
                self.topics,
                labels,
                model,
                self.outbox.path.parent,
                Path("/sys/class/thermal/thermal_zone0/temp").exists(),
            )

    def _client(self) -> mqtt.Client:
        self.client_id = self.m.client_id or f"emotion-edge-{self.cfg.device_id}"
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        c.will_set(
            self.topics["status"],
            json.dumps(status_payload("offline", self.cfg.device_id, timestamp=None)),
            qos=1,
            retain=True,
        )
        password = mqtt_password(self.m)
        if self.m.username:
            c.username_pw_set(self.m.username, password)
        if self.m.tls.enabled:
            c.tls_set(
                ca_certs=self.m.tls.ca_file or None,
                certfile=self.m.tls.cert_file or None,
                keyfile=self.m.tls.key_file or None,
            )
            c.tls_insecure_set(self.m.tls.insecure)
        c.reconnect_delay_set(self.m.reconnect_min_s, self.m.reconnect_max_s)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        return c

    # paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            self.connect_failures += 1
            self.link.fail(f"refused the connection: {reason_code}")
            self.first_connack.set()
            if self.refused in AUTH_FAILURES and not self.first_connack_ok:
                client.disconnect()
            return
        self.refused = None
        self.first_connack_ok = True
        self.connects += 1
        self.link.ok()
        client.publish(
            self.topics["status"], json.dumps(status_payload("online", self.cfg.device_id)), qos=1, retain=True
        )
        if self.discovery:
            client.subscribe(f"{self.cfg.homeassistant.discovery_prefix}/status", qos=1)
            self.discovery.publish(client)
        else:
            from .homeassistant import Discovery

            Discovery.withdraw(client, self.outbox.path.parent)
        for kind, payload in list(self.retained.items()):  # state after an outage or a broker restart is true again
            client.publish(self.topics[kind], payload, qos=1, retain=True)
        log.info("connected to %s:%d", self.m.host, self.m.port)
        self.connected.set()
        self.first_connack.set()
        self.wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho's reconnect failed at the TCP/TLS level (down, refused, TLS mismatch, not MQTT): logged once per outage.
        self.connect_failures += 1
        self.link.fail("cannot connect (TCP or TLS failed); events are kept in the outbox")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.stop.is_set():
            self.connected.clear()
            return
        if self.connected.is_set():
            self.disconnects += 1
            self.link.fail(f"disconnected ({reason_code}); events are kept in the outbox")
        elif not self.link.failing:
            self.connect_failures += 1  # closed before a CONNACK: not an MQTT broker, or it drops us
            self.link.fail(f"closed the connection before accepting it ({reason_code})")
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Runs inside paho's locks: only wake the sender, which checks its MQTTMessageInfo objects.
        self.wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if self.discovery and msg.payload == b"online":  # Home Assistant restarted: send discovery again
            self.discovery.publish(client)

    # ---------------------------------------------------------------------------------------
    def _reachable(self) -> bool:
        try:
            with socket.create_connection(
                (self.m.host, self.m.port), timeout=min(5.0, self.m.connect_timeout_s or 5.0)
            ):
                return True
        except OSError:
            return False

    def _claim_identity(self) -> None:
        """Two daemons publishing as the same device on one machine would take over each other's MQTT session
        (a reconnect every second, status flapping) and mix their events: the second one is refused instead.
        The claim is an abstract Unix socket, released by the kernel when the process ends, however it ends."""
        client_id = self.client_id
        digest = hashlib.sha256(f"{self.m.host}:{self.m.port}/{client_id}".encode()).hexdigest()[:40]
        self._claim = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._claim.bind(f"\0emotion-edge/{digest}")  # hashed: abstract names are limited to 107 bytes
        except OSError as exc:
            self._claim.close()
            if exc.errno != errno.EADDRINUSE:
                log.warning(
                    "cannot claim the MQTT identity %r on this machine (%s); not checking for duplicates",
                    client_id,
                    exc,
                )
                return
            raise UserError(
                f"another emotion-edge on this machine already publishes as {client_id!r} to "
                f"{self.m.host}:{self.m.port} "
                f"(device_id {self.cfg.device_id!r}); fix: give each camera's config its own device_id "
                "(emotion-edge@<name> instances get '<host>-<name>' by default)"
            ) from None

    def start(self) -> None:
        """Connect synchronously once so TLS and credential mistakes surface as one-line errors (before READY).

        A broker that is down is not a mistake: the daemon starts at once and queues in the outbox."""
        self._claim_identity()
        where = f"{self.m.host}:{self.m.port}"
        tls_hint = (
            "fix: check mqtt.port (8883 is usual for TLS), mqtt.tls.ca_file, the broker's certificate and host name"
        )
        reachable = self._reachable()
        try:
            if not reachable:
                raise ConnectionRefusedError("no answer")
            self.client.connect(self.m.host, self.m.port, self.m.keepalive_s)
        except ssl.SSLError as exc:
            raise UserError(f"TLS handshake with broker {where} failed ({exc.reason or exc}); {tls_hint}") from None
        except OSError as exc:
            if reachable and self.m.tls.enabled:  # the port answers TCP but the TLS handshake broke: a plain port?
                raise UserError(f"TLS handshake with broker {where} failed ({exc}); {tls_hint}") from None
            self.connect_failures += 1
            self.link.fail(f"unreachable ({exc}); running offline, events queue in {self.outbox.path}")
            reachable = False
            self.client.connect_async(self.m.host, self.m.port, self.m.keepalive_s)
        self.client.loop_start()
        self.sender.start()
        if reachable and self.first_connack.wait(self.m.connect_timeout_s) and self.refused in AUTH_FAILURES:
            self.client.loop_stop()
            raise UserError(
                f"broker {where} refused the credentials ({self.refused}); fix: check mqtt.username and the "
                "password file / systemd credential 'mqtt-password'"
            )
        if reachable and not self.first_connack.is_set():
            self.link.fail(
                f"no CONNACK within {self.m.connect_timeout_s:g} s (is it an MQTT broker?); retrying in the background"
            )

    def _send_loop(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(0.5)
            self.wake.clear()
            try:
                self._send_some()
                self.sender_health.ok()
            except (sqlite3.Error, OSError) as exc:  # the outbox's storage failed: retried on the next wake
                self.sender_health.fail(exc)
                self.stop.wait(1.0)
        try:
            self._collect_acks()
        except (sqlite3.Error, OSError) as exc:
            self.sender_health.fail(exc)

    def _send_some(self) -> None:
        """Acknowledge what the broker confirmed, then hand paho the next window of queued messages."""
        self._collect_acks()
        while self.connected.is_set() and not self.stop.is_set():
            room = WINDOW - len(self.inflight)
            if room <= 0:
                break
            rows = self.outbox.pending(self.last_sent, room)
            if not rows:
                break
            for row, topic, payload, qos in rows:
                if not self.connected.is_set():
                    break
                info = self.client.publish(topic, payload, qos=qos)
                if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                    log.warning("publish of outbox row %d failed (%s); will retry", row, mqtt.error_string(info.rc))
                    break
                # Queued in paho (sent now, or retransmitted by paho after a reconnect); PUBACK marks it published.
                self.inflight.append((info, row))
                self.inflight_since[row] = time.monotonic()
                self.last_sent = row

    def _collect_acks(self) -> None:
        """Delete from the outbox what the broker acknowledged (sender thread only)."""
        done: list[tuple[mqtt.MQTTMessageInfo, int]] = []
        waiting: list[tuple[mqtt.MQTTMessageInfo, int]] = []
        for item in self.inflight:
            (done if item[0].is_published() else waiting).append(item)
        self.inflight = waiting
        for _, seq in done:
            self.outbox.ack(seq)
            self.inflight_since.pop(seq, None)
        if waiting and self.connected.is_set():
            oldest = time.monotonic() - self.inflight_since.get(waiting[0][1], time.monotonic())
            if oldest > PUBACK_PATIENCE_S:
                self.acks.fail(f"{len(waiting)} message(s) unacknowledged for {oldest:.0f} s; they stay in the outbox")
        elif done or not waiting:
            self.acks.ok()

    def durable(self, kind: str, make_payload) -> None:
        self.outbox.add(self.topics[kind], lambda seq: json.dumps(make_payload(seq)).encode(), qos=1, stream=kind)
        self.wake.set()

    def transient(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        data = json.dumps(payload)
        if retain:
            self.retained[kind] = data
        if self.connected.is_set():
            self.client.publish(self.topics[kind], data, qos=1 if retain else 0, retain=retain)

    def health(self) -> dict[str, Any]:
        return {
            "publisher": "mqtt",
            "connected": self.connected.is_set(),
            "outbox_depth": self.outbox.depth(),
            "outbox_dropped": self.outbox.dropped(),
            "outbox_write_failed": self.outbox.write_failed,
            "outbox_recovered": self.outbox.recovered,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        """Drain what the broker can take within timeout_s, publish `stopped`, disconnect cleanly."""
        deadline = time.monotonic() + timeout_s
        while self.connected.is_set() and self.outbox.depth() and time.monotonic() < deadline:
            self.wake.set()
            time.sleep(0.05)
        self.stop.set()
        self.wake.set()
        if self.sender.is_alive():
            self.sender.join(timeout=2)
        if self.connected.is_set():
            info = self.client.publish(
                self.topics["status"], json.dumps(status_payload("stopped", self.cfg.device_id)), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=max(0.5, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
            self.client.disconnect()
        self.client.loop_stop()
        left = self.outbox.depth()
        if left:
            log.warning(
                "%d event(s) remain in the outbox %s and will be sent on the next start", left, self.outbox.path
            )
        self.outbox.close()
