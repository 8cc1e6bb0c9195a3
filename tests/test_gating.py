"""Motion gating and per-track classification keep the events of the ungated frame loop.

Both pipelines see the same frames with the same capture times (30 fps), through the real detector and the
production model. The stated tolerance (README, *Efficient at camera rate*): the same events — type and
emotion, in order, per track — and each gated event within 0.5 s of its ungated counterpart.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.app import build_parts
from edge.bench_rate import scene_frames, ungated
from edge.camera.capture import LatestFrameCapture
from edge.config import load_config
from edge.pipeline import Pipeline
from edge.publish.null import NullPublisher

FPS = 30.0
TOLERANCE_S = 0.5


class Recorder(NullPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    def durable(self, kind, make_payload) -> None:
        super().durable(kind, make_payload)
        if kind == "events":
            self.events.append(make_payload(0))


class _NoSource:
    name = "frames"

    def open(self) -> None: ...

    def read(self) -> None: ...

    def close(self) -> None: ...


def _events(cfg, parts, frames: list[np.ndarray]) -> tuple[list[tuple], Pipeline]:
    classifier, detector = parts
    rec = Recorder()
    pipe = Pipeline(cfg, LatestFrameCapture(_NoSource()), detector, classifier, rec)
    t = 1000.0
    for i, frame in enumerate(frames):
        pipe.process(frame, t + i / FPS)
    pipe._end_tracks(t + len(frames) / FPS)
    # (track, type, emotion, time): the time an event was decided is first_seen + duration_s
    return [(e["track_id"], e["type"], e["emotion"], e["duration_s"]) for e in rec.events], pipe


def _compare(gated: list[tuple], plain: list[tuple]) -> None:
    assert [e[:3] for e in gated] == [e[:3] for e in plain], (gated, plain)
    for g, p in zip(gated, plain, strict=True):
        if g[1] != "leave":  # a leave is timed by max_missing_s after the last detection, not by the model
            assert abs(g[3] - p[3]) <= TOLERANCE_S, (g, p)


@pytest.fixture(scope="module")
def setup(edge_models):
    cfg = load_config(None)
    from dataclasses import replace

    cfg = replace(cfg, classifier=replace(cfg.classifier, models_dir=str(edge_models[0]), model=edge_models[1]))
    classifier, detector, _ = build_parts(cfg)
    return cfg, (classifier, detector)


def test_demo_clip_events_match_the_ungated_loop(setup):
    from edge.bench_rate import demo_frames

    cfg, parts = setup
    frames = demo_frames(360)  # 12 s: one, two, then three faces
    gated, gp = _events(cfg, parts, frames)
    plain, up = _events(ungated(cfg), parts, frames)
    assert sum(e[1] == "appear" for e in plain) == 3
    _compare(gated, plain)
    # and it did less work for them
    assert gp.stats.detector_runs < up.stats.detector_runs / 2
    assert gp.stats.classifications < up.stats.classifications / 3


def test_still_scene_runs_the_detector_only_at_the_idle_interval(setup):
    cfg, parts = setup
    frames = scene_frames(0, n=45) * 4  # 6 s of an empty, noisy, still room
    events, pipe = _events(cfg, parts, frames)
    assert events == []
    seconds = len(frames) / FPS
    assert pipe.stats.detector_runs <= seconds / cfg.gating.idle_detect_interval_s + 2  # + the first frame


def _fer_faces(fer_root, labels, classifier, detector, per_class=2):
    """FER2013 test faces the production model reads with confidence, enlarged to camera size, that BlazeFace
    finds in a frame: the expressions of one 'person' in turn."""
    from edge.core.preprocess import preprocess_face

    out = []
    for label in labels:
        found = 0
        for path in sorted((fer_root / "test" / label).glob("*.jpg"))[:300]:
            face = cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (200, 200), interpolation=cv2.INTER_CUBIC)
            frame = np.full((480, 640, 3), 100, np.uint8)
            frame[140:340, 220:420] = face
            boxes = detector.detect(frame)
            if len(boxes) != 1:
                continue
            p = classifier.probabilities(preprocess_face(frame, boxes[0], classifier.spec))
            if classifier.labels[int(np.argmax(p))] == label and p.max() >= 0.8:
                out.append((label, frame))
                found += 1
                if found == per_class:
                    break
    return out


def test_changing_expressions_give_the_same_events(setup, fer_root):
    """A composite clip made at run time (never committed): one face position, the expression changing
    every 2 s among FER2013 test faces of the model's classes."""
    cfg, parts = setup
    classifier, detector = parts
    faces = _fer_faces(fer_root, classifier.labels, classifier, detector)
    assert len({label for label, _ in faces}) >= 3, "too few confidently read FER2013 faces found"
    order = faces[0::2] + faces[1::2]  # alternate the classes so that every switch is a change
    frames = [f for _, f in order for _ in range(int(2 * FPS))]
    gated, _ = _events(cfg, parts, frames)
    plain, _ = _events(ungated(cfg), parts, frames)
    assert sum(e[1] == "change" for e in plain) >= 3
    _compare(gated, plain)


def test_batched_classification_equals_one_call_per_face(setup, astronaut):
    """One interpreter call for the faces of a frame (mirror TTA inside the same call) gives the same
    probabilities as one call per face."""
    from edge.core.preprocess import preprocess_face
    from edge.core.types import Box

    _, (classifier, _) = setup
    crops = [
        preprocess_face(astronaut, Box(150 + 7 * k, 60 + 5 * k, 330 - 3 * k, 250 - 4 * k), classifier.spec)
        for k in range(5)
    ]
    for n in (1, 2, 5):
        one_by_one = [classifier.probabilities(c) for c in crops[:n]]
        batched = classifier.probabilities_batch(crops[:n])
        assert len(batched) == n
        for a, b in zip(one_by_one, batched, strict=True):
            assert np.allclose(a, b, atol=1e-6), (a, b)
    assert classifier.probabilities_batch([]) == []
