"""Tracking: stable ids, smoothing, hysteresis, leave."""

import math

import numpy as np
import pytest

from edge.core.types import Box
from edge.track import Tracker, iou

LABELS = ("happy", "sad")
HAPPY, SAD = np.array([0.9, 0.1]), np.array([0.1, 0.9])


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == 0.0
    assert abs(iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_stable_ids_and_appear_after_min_duration():
    tr = Tracker(LABELS, min_duration_s=0.5, smoothing_s=0.0)
    a, b = Box(0, 0, 100, 100), Box(300, 0, 400, 100)
    assert tr.update(0.0, [a, b], [HAPPY, SAD]) == []  # not held long enough yet
    ids = set(tr.tracks)
    ev = tr.update(0.6, [Box(5, 0, 105, 100), Box(305, 0, 405, 100)], [HAPPY, SAD])
    assert set(tr.tracks) == ids and len(ids) == 2
    assert sorted((e.type, e.emotion) for e in ev) == [("appear", "happy"), ("appear", "sad")]


def test_hysteresis_needs_duration_and_confidence():
    tr = Tracker(LABELS, min_duration_s=0.5, smoothing_s=0.0, min_confidence=0.6)
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
    tr = Tracker(LABELS, min_duration_s=0.0, smoothing_s=0.45)  # weight 0.2 per 0.1 s step
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


def test_smoothing_is_by_time_not_by_frames():
    """Classified 30 times a second or 5 times, the smoothed probabilities after 1 s of a new expression agree."""

    def after_one_second(hz: float) -> np.ndarray:
        tr = Tracker(LABELS, smoothing_s=0.3)
        box = Box(0, 0, 100, 100)
        tr.update(0.0, [box], [HAPPY])
        n = int(hz)
        for i in range(1, n + 1):
            tr.update(i / hz, [box], [SAD])
        return next(iter(tr.tracks.values())).probs

    fast, slow = after_one_second(30.0), after_one_second(5.0)
    expected = 0.9 - 0.8 * np.exp(-1.0 / 0.3)  # the continuous-time average: same at any rate
    assert np.allclose(fast, slow, atol=1e-5) and abs(fast[1] - expected) < 1e-5


def test_due_classifies_new_faces_at_once_and_tracked_ones_at_the_rate():
    tr = Tracker(LABELS)
    a = Box(0, 0, 100, 100)
    assert tr.due(0.0, [a], 0.2) == [math.inf]  # new
    tr.update(0.0, [a], [HAPPY])
    b = Box(300, 0, 400, 100)
    assert tr.due(0.1, [a, b], 0.2) == [None, math.inf]  # tracked and recent; new
    tr.update(0.1, [a, b], [None, SAD])  # the tracked face keeps its probabilities
    assert np.allclose(tr.tracks[1].probs, HAPPY) and tr.tracks[1].last_seen == 0.1
    assert tr.due(0.2, [a, b], 0.2) == [pytest.approx(0.2), None]
    assert tr.due(0.15, [a, b], 0.0) == [pytest.approx(0.15), pytest.approx(0.05)]  # 0: every time


def test_budget_takes_the_stalest_faces_and_never_delays_a_new_one():
    from edge.motion import ClassifyBudget

    b = ClassifyBudget(10.0)  # 10 a second, up to 5 at once
    assert b.select(0.0, [0.4, 0.9, None, 0.6, 0.5, 0.7, 0.3]) == [True, True, False, True, True, True, False]
    assert b.select(0.0, [math.inf, 0.9]) == [True, False]  # the bucket is empty: only the new face
    # over a long run the rate holds: 5 stale faces offered 30 times a second get about 10 classifications/s
    n = sum(sum(b.select(1.0 + k / 30, [1.0] * 5)) for k in range(300))
    assert 95 <= n <= 106
    assert ClassifyBudget(0).select(0.0, [None, 0.1, math.inf]) == [False, True, True]  # 0: no limit
