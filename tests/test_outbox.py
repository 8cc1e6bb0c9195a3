"""The SQLite outbox: ordered, bounded (oldest dropped and counted), durable across reopen."""

import json

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

    try:
        box.add("t", boom)
    except ValueError:
        pass
    assert box.depth() == 0 and _add(box, 1) == [1]  # no sequence number was burned
