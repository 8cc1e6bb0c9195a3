"""Tracking: stable ids, smoothing, hysteresis, leave."""

import numpy as np

from edge.core.types import Box
from edge.track import Tracker, iou

LABELS = ("happy", "sad")
HAPPY, SAD = np.array([0.9, 0.1]), np.array([0.1, 0.9])


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == 0.0
    assert abs(iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_stable_ids_and_appear_after_min_duration():
    tr = Tracker(LABELS, min_duration_s=0.5, smoothing=1.0)
    a, b = Box(0, 0, 100, 100), Box(300, 0, 400, 100)
    assert tr.update(0.0, [a, b], [HAPPY, SAD]) == []  # not held long enough yet
    ids = set(tr.tracks)
    ev = tr.update(0.6, [Box(5, 0, 105, 100), Box(305, 0, 405, 100)], [HAPPY, SAD])
    assert set(tr.tracks) == ids and len(ids) == 2
    assert sorted((e.type, e.emotion) for e in ev) == [("appear", "happy"), ("appear", "sad")]


def test_hysteresis_needs_duration_and_confidence():
    tr = Tracker(LABELS, min_duration_s=0.5, smoothing=1.0, min_confidence=0.6)
    box = Box(0, 0, 100, 100)
    tr.update(0.0, [box], [HAPPY])
    assert [e.type for e in tr.update(0.5, [box], [HAPPY])] == ["appear"]
    assert tr.update(0.6, [box], [SAD]) == []  # a single sad frame is not a change
    assert tr.update(0.7, [box], [HAPPY]) == []
    assert tr.update(0.8, [box], [np.array([0.45, 0.55])]) == []  # not confident enough
    tr.update(1.0, [box], [SAD])
    ev = tr.update(1.6, [box], [SAD])
    assert [(e.type, e.emotion, e.previous) for e in ev] == [("change", "sad", "happy")]


def test_smoothing_damps_flicker():
    tr = Tracker(LABELS, min_duration_s=0.0, smoothing=0.2)
    box = Box(0, 0, 100, 100)
    tr.update(0.0, [box], [HAPPY])
    for i in range(1, 4):
        out = tr.update(0.1 * i, [box], [SAD if i % 2 else HAPPY])
        assert all(e.type != "change" for e in out)


def test_leave_after_max_missing():
    tr = Tracker(LABELS, min_duration_s=0.0, max_missing_s=1.0)
    tr.update(0.0, [Box(0, 0, 100, 100)], [HAPPY])
    assert tr.update(0.5, [], []) == []
    ev = tr.update(1.2, [], [])
    assert [(e.type, e.emotion) for e in ev] == [("leave", "happy")] and not tr.tracks


def test_flush_leaves_everyone():
    tr = Tracker(LABELS, min_duration_s=0.0)
    tr.update(0.0, [Box(0, 0, 100, 100), Box(200, 0, 300, 100)], [HAPPY, SAD])
    assert [e.type for e in tr.flush(1.0)] == ["leave", "leave"]
