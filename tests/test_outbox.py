"""The SQLite outbox: ordered, bounded (oldest dropped and counted), durable across reopen."""

import json
import os
import shutil
import subprocess

import pytest

from edge.core.errors import UserError
from edge.publish.outbox import Outbox


def _add(box, n):
    return [box.add("t/events", lambda seq: json.dumps({"seq": seq}).encode()) for _ in range(n)]


def test_order_ack_and_sequence_survive_reopen(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    assert _add(box, 3) == [1, 2, 3]
    box.ack(1)
    rows = box.pending(0, 10)
    assert [r[0] for r in rows] == [2, 3] and json.loads(rows[0][2]) == {"seq": 2}
    box.close()
    box = Outbox(path)
    assert box.depth() == 2 and _add(box, 1) == [4]  # the per-device sequence continues after a restart
    assert [r[0] for r in box.pending(2, 10)] == [3, 4]


def test_bound_drops_oldest_and_counts(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_events=5)
    _add(box, 8)
    assert box.depth() == 5 and box.dropped() == 3
    assert [r[0] for r in box.pending(0, 10)] == [4, 5, 6, 7, 8]


def test_failed_payload_builder_rolls_back(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")

    def boom(seq):
        raise ValueError("bad payload")

    with pytest.raises(ValueError, match="bad payload"):
        box.add("t", boom)
    assert box.depth() == 0 and _add(box, 1) == [1]  # no sequence number was burned


# --- storage faults: moved aside, never a crash; seq never repeats ------------------------------------------
def _fill_and_close(path, n=5):
    box = Outbox(path)
    seqs = _add(box, n)
    box.close()
    return seqs


@pytest.mark.parametrize("damage", ["random", "half", "empty"])
def test_damaged_database_is_moved_aside_and_seq_continues(tmp_path, damage, caplog):
    path = tmp_path / "o.sqlite"
    assert _fill_and_close(path) == [1, 2, 3, 4, 5]
    for extra in ("-wal", "-shm"):
        (tmp_path / f"o.sqlite{extra}").unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes({"random": os.urandom(len(data)), "half": data[: len(data) // 2], "empty": b""}[damage])
    box = Outbox(path)  # no exception: a fresh outbox
    seq = _add(box, 1)[0]
    assert seq > 5, "a sequence number was reused after the outbox was lost"
    assert box.recovered == 1 and list(tmp_path.glob("o.sqlite.bad-*")), "the damaged file is kept for inspection"
    assert any("moved aside" in r.message for r in caplog.records)


def test_corruption_while_running_recovers(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    _add(box, 3)
    box.db.close()
    path.write_bytes(os.urandom(8192))
    box.db = __import__("sqlite3").connect(str(path), check_same_thread=False, isolation_level=None)
    assert box.add("t/events", lambda seq: b"x") is None  # this one is counted as failed, not raised
    assert box.write_failed == 1 and box.recovered == 1
    assert _add(box, 1)[0] > 3


def test_location_mistakes_are_one_line(tmp_path):
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        Outbox(tmp_path / "dir.sqlite")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_disk_full_drops_count_and_recover(tmp_path, caplog):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        box = Outbox(mnt / "o.sqlite")
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * 64_000)  # another program filling the disk
        big = os.urandom(16_000)
        results = [box.add("t/events", lambda seq: big) for _ in range(40)]
        assert None in results and box.write_failed >= 1  # full: dropped and counted, no exception
        stored = [r for r in results if r is not None]
        assert stored == list(range(1, len(stored) + 1))
        failures = [r for r in caplog.records if "cannot store a message" in r.message]
        assert len(failures) == 1  # logged once per episode
        ballast.unlink()  # space again: the next message is stored, with the next number
        assert box.add("t/events", lambda seq: b"small") == len(stored) + 1
        assert any("recovered" in r.message for r in caplog.records)
        box.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_streams_have_their_own_sequence(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    got = [
        box.add("t/events", lambda s: b"e"),
        box.add("t/summary", lambda s: b"s", stream="summary"),
        box.add("t/events", lambda s: b"e"),
    ]
    assert got == [1, 1, 2]
    assert [r[1] for r in box.pending(0, 10)] == ["t/events", "t/summary", "t/events"]  # one queue, in order


def test_bound_is_counted_without_count_queries(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite", max_events=10)
    _add(box, 25)
    assert box.depth() == 10 and box.dropped() == 15
    assert sum("is full" in r.message for r in caplog.records) == 1
