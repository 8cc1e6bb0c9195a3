"""A bounded, durable, ordered outbox (SQLite) for events that must survive a broker outage or a restart.

Every durable message is written here before it is published and deleted only when the broker
acknowledges it (PUBACK), so nothing is lost silently. When the bound is reached the oldest rows
are dropped and counted. The per-device sequence number lives here too, so it keeps increasing
across restarts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path


def default_outbox_path() -> Path:
    state = os.environ.get("STATE_DIRECTORY")  # systemd StateDirectory=
    base = Path(state.split(":")[0]) if state else Path.home() / ".local" / "state" / "emotion-edge"
    return base / "outbox.sqlite"


class Outbox:
    def __init__(self, path: str | Path, max_events: int = 100000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an event acknowledged to the pipeline is on disk
        self.db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
                        "payload BLOB NOT NULL, qos INTEGER NOT NULL, created REAL NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    def _meta(self, key: str) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def add(self, topic: str, make_payload, qos: int = 1) -> int:
        """Allocate the next sequence number, build the payload with it, store it; returns the seq."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta("seq") + 1
                self._set_meta("seq", seq)
                payload = make_payload(seq)
                self.db.execute("INSERT INTO outbox(seq, topic, payload, qos, created) VALUES(?, ?, ?, ?, ?)",
                                (seq, topic, payload, qos, time.time()))
                over = self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.max_events
                if over > 0:
                    self.db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (over,))
                    self._set_meta("dropped", self._meta("dropped") + over)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return seq

    def pending(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes, int]]:
        with self.lock:
            return self.db.execute("SELECT seq, topic, payload, qos FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (after_seq, limit)).fetchall()

    def ack(self, seq: int) -> None:
        with self.lock:
            self.db.execute("DELETE FROM outbox WHERE seq=?", (seq,))

    def depth(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def dropped(self) -> int:
        with self.lock:
            return self._meta("dropped")

    def close(self) -> None:
        with self.lock:
            self.db.close()
