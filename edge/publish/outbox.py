"""A bounded, durable, ordered outbox (SQLite) for events that must survive a broker outage or a restart.

Every durable message is written here before it is published and deleted only when the broker
acknowledges it (PUBACK), so nothing is lost silently. Each stream (events, summary) has its own
contiguous sequence number, so a gap a subscriber sees on one topic really is a drop.

Storage faults are faults, not crashes:
- a corrupt, truncated or unreadable database is moved aside (`outbox.sqlite.bad-<time>`, kept for
  inspection) and a fresh one is started; sequence numbers continue from a high-water mark kept in a
  separate file (`outbox.sqlite.seq`, reserved in blocks), so ids and seq never repeat — the skipped
  range is the visible gap;
- a write that fails (disk full, I/O error) drops that message, counts it (`write_failed`) and logs once
  per episode; the next message tries again;
- the bound is checked against an in-memory count (constant time); drops at the bound are counted and
  logged once per episode.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from edge.core.errors import UserError
from edge.faults import FaultState

log = logging.getLogger(__name__)

SEQ_BLOCK = 1000  # sequence numbers reserved per write of the high-water file


def default_outbox_path() -> Path:
    state = os.environ.get("STATE_DIRECTORY")  # systemd StateDirectory=
    base = Path(state.split(":")[0]) if state else Path.home() / ".local" / "state" / "emotion-edge"
    return base / "outbox.sqlite"


class Outbox:
    def __init__(self, path: str | Path, max_events: int = 100000):
        self.path = Path(path)
        self.max_events = max_events
        self.lock = threading.Lock()
        self.health = FaultState(f"outbox {self.path}")
        self.write_failed = 0  # messages that could not be stored (disk full, I/O error): counted drops
        self.recovered = 0  # databases moved aside
        self._dropped_episode = False
        self._check_location()
        self.hwm_path = self.path.with_name(self.path.name + ".seq")
        self.reserved = self._read_hwm()
        try:
            self.db = self._open()
        except (sqlite3.Error, OSError) as exc:
            raise UserError(
                f"cannot open or recreate the outbox {self.path} ({exc}); "
                "fix: check the disk and the folder's permissions, or set mqtt.outbox_path"
            ) from None

    # -- opening and recovery ------------------------------------------------------------------
    def _check_location(self) -> None:
        """Start-up mistakes (before READY): one line naming the fix."""
        if self.path.is_dir():
            raise UserError(
                f"mqtt.outbox_path {self.path} is a directory; fix: name a file inside it, e.g. "
                f"{self.path / 'outbox.sqlite'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the outbox folder {self.path.parent} ({exc.strerror}); "
                "fix: make it writable by the service user or set mqtt.outbox_path"
            ) from None
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise UserError(
                f"the outbox folder {self.path.parent} is not writable by this user; "
                "fix: make it writable (under systemd: StateDirectory=) or set mqtt.outbox_path"
            )

    def _read_hwm(self) -> dict[str, int]:
        try:
            data = json.loads(self.hwm_path.read_text())
            return {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _write_hwm(self) -> None:
        tmp = self.hwm_path.with_name(self.hwm_path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.reserved, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.hwm_path)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():  # events can be personal data: owner-only, also outside systemd's UMask=0077
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an event acknowledged to the pipeline is on disk
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            # `seq` here is the row's position in the queue; the per-stream sequence numbers live in meta.
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, qos INTEGER NOT NULL, created REAL NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                try:
                    os.replace(src, Path(f"{self.path}.bad-{stamp}{suffix}"))
                except OSError:
                    src.unlink(missing_ok=True)
        self.recovered += 1
        log.error(
            "outbox %s was unusable (%s): moved aside as %s.bad-%s and started a fresh one; events still queued "
            "in it were not sent (inspect it with sqlite3)",
            self.path,
            why,
            self.path.name,
            stamp,
        )

    def _open(self) -> sqlite3.Connection:
        emptied = self.path.exists() and self.path.stat().st_size == 0 and bool(self.reserved)
        if emptied:
            self._move_aside("0 bytes long although events were sent from it before")
        try:
            db = self._connect()
        except sqlite3.Error as exc:
            self._move_aside(str(exc))
            db = self._connect()
        self.db = db
        fresh = not db.execute("SELECT 1 FROM meta LIMIT 1").fetchone()
        if fresh and self.reserved:
            # A new database where one existed before: continue above everything that might have been issued.
            for stream, hwm in self.reserved.items():
                self._set_meta(f"seq:{stream}", hwm)
            log.warning(
                "outbox %s is new: sequence numbers continue above %s, so subscribers see the gap",
                self.path,
                self.reserved,
            )
        self.count = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        top = db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
        if top > self._meta("row"):
            self._set_meta("row", top)
        return db

    def _recover(self, why: str) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass
        self._move_aside(why)
        self.db = self._open()

    # -- queue -----------------------------------------------------------------------------------
    def _meta(self, key: str) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def _stream_seq(self, stream: str) -> int:
        seq = self._meta(f"seq:{stream}")
        if not seq and stream == "events":
            seq = self._meta("seq")  # schema_version 1 outboxes had one shared counter
        return seq

    def add(self, topic: str, make_payload, qos: int = 1, stream: str = "events") -> int | None:
        """Allocate the stream's next sequence number, build the payload with it, store it; returns the seq.

        None when the storage failed (counted in write_failed, logged once per episode). A payload builder that
        raises is the caller's bug: rolled back, re-raised, no number burned."""
        with self.lock:
            try:
                return self._add(topic, make_payload, qos, stream)
            except OSError as exc:  # the high-water file could not be written
                self.write_failed += 1
                self.health.fail(f"cannot store a message ({exc.strerror}); it is dropped and counted")
                return None
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error, read-only: the next add retries
                    self.write_failed += 1
                    self.health.fail(f"cannot store a message ({exc}); it is dropped and counted")
                    return None
                self.write_failed += 1
                self.health.fail(f"database damaged ({exc})")
                try:
                    self._recover(str(exc))
                except (sqlite3.Error, OSError) as exc2:
                    self.health.fail(f"cannot recreate it ({exc2})")
                return None

    def _add(self, topic: str, make_payload, qos: int, stream: str) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            seq = self._stream_seq(stream) + 1
            if seq > self.reserved.get(stream, 0):
                self.reserved[stream] = seq + SEQ_BLOCK
                self._write_hwm()
            self._set_meta(f"seq:{stream}", seq)
            row = self._meta("row") + 1
            self._set_meta("row", row)
            payload = make_payload(seq)
            db.execute(
                "INSERT INTO outbox(seq, topic, payload, qos, created) VALUES(?, ?, ?, ?, ?)",
                (row, topic, payload, qos, time.time()),
            )
            over = self.count + 1 - self.max_events
            if over > 0:
                db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (over,))
                self._set_meta("dropped", self._meta("dropped") + over)
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # "cannot rollback - no transaction is active": SQLite already rolled back (disk full)
            raise
        self.count += 1 - max(0, over)
        self.health.ok()
        if over > 0 and not self._dropped_episode:
            self._dropped_episode = True
            log.warning(
                "outbox %s is full (%d messages): dropping the oldest (counted in outbox_dropped; logged once "
                "until it drains)",
                self.path,
                self.max_events,
            )
        elif over <= 0 and self._dropped_episode and self.count < self.max_events * 0.9:
            self._dropped_episode = False
        return seq

    def pending(self, after_row: int, limit: int) -> list[tuple[int, str, bytes, int]]:
        """(row, topic, payload, qos) in queue order, after the given row."""
        with self.lock:
            return self.db.execute(
                "SELECT seq, topic, payload, qos FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after_row, limit)
            ).fetchall()

    def ack(self, row: int) -> None:
        with self.lock:
            if self.db.execute("DELETE FROM outbox WHERE seq=?", (row,)).rowcount:
                self.count -= 1

    def depth(self) -> int:
        return self.count

    def dropped(self) -> int:
        with self.lock:
            try:
                return self._meta("dropped")
            except sqlite3.Error:
                return -1

    def close(self) -> None:
        with self.lock:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
