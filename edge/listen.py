"""`emotion-edge listen`: the reference subscriber for the MQTT contract.

Subscribes to one device or all (`<prefix>/<device|+>/#`, QoS 1), de-duplicates events and summaries by `id`
(delivery is at-least-once), checks each stream's `seq` per device and reports every gap (a drop) and every
restart of a sequence, and prints human lines or JSON lines; optionally appends events to CSV and/or SQLite.
"""

from __future__ import annotations

import csv
import json
import logging
import signal
import sqlite3
import ssl
import sys
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from edge.config import read_secret
from edge.core.errors import UserError

log = logging.getLogger(__name__)

SEEN_IDS = 100_000  # ids remembered for de-duplication (oldest forgotten first)
CSV_FIELDS = ("timestamp", "device_id", "camera", "type", "track_id", "emotion", "confidence", "seq", "id")


@dataclass
class StreamState:
    last_seq: int | None = None
    received: int = 0
    duplicates: int = 0
    missing: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)


class Listener:
    """Everything but the network: feed it (topic, payload) pairs; it de-duplicates, accounts and writes."""

    def __init__(
        self,
        prefix: str,
        out: TextIO,
        as_json: bool = False,
        csv_path: Path | None = None,
        sqlite_path: Path | None = None,
    ):
        self.prefix = prefix.rstrip("/")
        self.out = out
        self.as_json = as_json
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.streams: dict[tuple[str, str], StreamState] = defaultdict(StreamState)
        self.status: dict[str, str] = {}
        self.lock = threading.Lock()
        self.csv_file: TextIO | None = None
        self.csv = None
        if csv_path:
            new = not csv_path.exists() or csv_path.stat().st_size == 0
            self.csv_file = open(csv_path, "a", newline="")
            self.csv = csv.DictWriter(self.csv_file, CSV_FIELDS, extrasaction="ignore")
            if new:
                self.csv.writeheader()
        self.db = None
        if sqlite_path:
            self.db = sqlite3.connect(str(sqlite_path), check_same_thread=False)  # written from paho's thread
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, seq INTEGER, device_id TEXT, camera TEXT, "
                "timestamp TEXT, type TEXT, track_id INTEGER, emotion TEXT, confidence REAL, payload TEXT)"
            )

    def _emit(self, record: dict, line: str) -> None:
        self.out.write((json.dumps(record) if self.as_json else line) + "\n")
        self.out.flush()

    def handle(self, topic: str, raw: bytes) -> bool:
        """True when this was a new (not duplicate) event."""
        with self.lock:
            return bool(self._handle(topic, raw))

    def _handle(self, topic: str, raw: bytes) -> bool | None:
        rest = topic[len(self.prefix) + 1 :] if topic.startswith(self.prefix + "/") else topic
        parts = rest.split("/")
        if len(parts) != 2:
            return None  # not part of the contract (e.g. a deeper topic)
        device, kind = parts
        if not raw:
            return None  # a cleared retained message
        try:
            payload = json.loads(raw)
        except ValueError:
            self._emit({"warning": "not JSON", "topic": topic}, f"! {topic}: payload is not JSON")
            return None
        if kind in ("events", "summary"):
            return self._durable(device, kind, payload, topic) and kind == "events"
        elif kind == "status":
            state = payload.get("state")
            if self.status.get(device) != state:
                self.status[device] = state
                self._emit(
                    {"topic": topic, "payload": payload},
                    f"{payload.get('timestamp') or '-':<24} {device:<16} status {state}",
                )
        elif kind == "state" and not self.as_json:
            self._emit(
                {},
                f"{payload.get('timestamp', '-'):<24} {device:<16} state  {payload.get('dominant_emotion')} "
                f"({payload.get('faces')} faces: {payload.get('counts')})",
            )
        elif self.as_json:
            self._emit({"topic": topic, "payload": payload}, "")
        return None

    def _durable(self, device: str, kind: str, p: dict, topic: str) -> bool:
        st = self.streams[(device, kind)]
        pid, seq = str(p.get("id")), p.get("seq")
        if pid in self.seen:
            st.duplicates += 1  # at-least-once delivery: the same event again
            return False
        self.seen[pid] = None
        if len(self.seen) > SEEN_IDS:
            self.seen.popitem(last=False)
        st.received += 1
        if isinstance(seq, int):
            if st.last_seq is not None and seq > st.last_seq + 1:
                first, last = st.last_seq + 1, seq - 1
                st.gaps.append((first, last))
                st.missing += last - first + 1
                self._emit(
                    {
                        "gap": {
                            "device_id": device,
                            "stream": kind,
                            "first": first,
                            "last": last,
                            "missing": last - first + 1,
                        }
                    },
                    f"! GAP {device} {kind}: seq {first}..{last} missing ({last - first + 1} dropped)",
                )
            elif st.last_seq is not None and seq <= st.last_seq:
                self._emit(
                    {"restart": {"device_id": device, "stream": kind, "seq": seq, "previous": st.last_seq}},
                    f"! {device} {kind}: seq went back from {st.last_seq} to {seq} (a new outbox: see its log)",
                )
            st.last_seq = seq
        if kind == "events":
            line = (
                f"{p.get('timestamp', '-'):<24} {device:<16} {p.get('camera', '-'):<8} #{seq:<6} "
                f"{p.get('type', '?'):<7} "
                f"track {p.get('track_id')}: {p.get('emotion')} ({p.get('confidence')})"
            )
            if self.csv and self.csv_file:
                self.csv.writerow({k: p.get(k) for k in CSV_FIELDS})
                self.csv_file.flush()
            if self.db is not None:
                self.db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        pid,
                        seq,
                        p.get("device_id"),
                        p.get("camera"),
                        p.get("timestamp"),
                        p.get("type"),
                        p.get("track_id"),
                        p.get("emotion"),
                        p.get("confidence"),
                        json.dumps(p),
                    ),
                )
                self.db.commit()
        else:
            line = f"{p.get('timestamp', '-'):<24} {device:<16} summary #{seq}: {p.get('counts')}"
        self._emit({"topic": topic, "payload": p}, line)
        return True

    def summary(self) -> list[str]:
        lines = []
        for (device, kind), st in sorted(self.streams.items()):
            lines.append(
                f"{device} {kind}: {st.received} received, {st.duplicates} duplicate(s) dropped, "
                f"{st.missing} missing in {len(st.gaps)} gap(s)"
            )
        return lines

    def close(self) -> None:
        if self.csv_file:
            self.csv_file.close()
        if self.db is not None:
            self.db.close()


def listen(args) -> int:
    import paho.mqtt.client as mqtt

    if any(c in args.device for c in "#/") or (args.device != "+" and "+" in args.device):
        raise UserError(f"--device {args.device!r} must be one device id, or '+' for all")
    password = read_secret(args.password_file, "--password-file") if args.password_file else None
    try:
        listener = Listener(args.prefix, sys.stdout, args.json, args.csv, args.sqlite)
    except (OSError, sqlite3.Error) as exc:
        raise UserError(f"cannot open --csv/--sqlite for appending ({exc}); fix: a writable path") from None
    topic = f"{args.prefix.rstrip('/')}/{args.device}/#"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id or "", clean_session=not args.client_id
    )
    if args.username:
        client.username_pw_set(args.username, password)
    if args.tls or args.ca_file:
        try:
            client.tls_set(ca_certs=args.ca_file, certfile=args.cert_file, keyfile=args.key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UserError(
                f"cannot use the TLS files ({exc}); fix: --ca-file (and --cert-file/--key-file) as PEM files"
            ) from None
    done = threading.Event()
    count = [0]
    connack: list = []

    def on_connect(c, userdata, flags, reason_code, properties):
        connack.append(reason_code)
        if reason_code.is_failure:
            done.set()
            return
        c.subscribe(topic, qos=1)

    def on_message(c, userdata, msg):
        if listener.handle(msg.topic, msg.payload):
            count[0] += 1
            if args.count and count[0] >= args.count:
                done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as exc:
        raise UserError(
            f"cannot connect to the broker at {args.host}:{args.port} ({exc}); fix: check --host/--port (and --tls)"
        ) from None
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *a: done.set())
    client.loop_start()
    try:
        done.wait(args.duration if args.duration else None)
    except KeyboardInterrupt:
        pass
    client.loop_stop()
    client.disconnect()
    listener.close()
    if connack and connack[0].is_failure:
        raise UserError(f"the broker refused the connection ({connack[0]}); fix: --username / --password-file")
    for line in listener.summary():
        print(line, file=sys.stderr)
    return 0
