"""Face tracks across frames: stable ids, smoothed probabilities, and hysteresis-filtered events.

A track emits `appear` once its smoothed emotion is confident, `change` when another emotion has
held above `min_confidence` for `min_duration_s`, and `leave` after `max_missing_s` unseen.
Times are time.monotonic() seconds (the frames' capture times). Everything is by time, not by frames:
probabilities are averaged with a time constant (`smoothing_s`), so a face classified 30 times a second
and one classified 5 times a second (`classifier.classify_hz`) end up with the same smoothed emotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.core.types import Box


@dataclass
class Track:
    id: int
    box: Box
    probs: np.ndarray
    first_seen: float
    last_seen: float
    last_classified: float
    emotion: str | None = None  # the reported (stable) emotion
    candidate: str | None = None
    candidate_since: float = 0.0


@dataclass(frozen=True)
class TrackEvent:
    type: str  # appear | change | leave
    track_id: int
    emotion: str
    previous: str | None
    confidence: float
    probabilities: dict[str, float]
    box: Box
    duration_s: float


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Tracker:
    labels: tuple[str, ...]
    iou_threshold: float = 0.3
    max_missing_s: float = 1.0
    smoothing_s: float = 0.1
    min_confidence: float = 0.5
    min_duration_s: float = 0.5
    tracks: dict[int, Track] = field(default_factory=dict)
    next_id: int = 1

    def _match(self, boxes: list[Box]) -> dict[int, int]:
        """Greedy IoU matching, best pairs first: detection index -> track id."""
        pairs = sorted(
            ((iou(t.box, b), tid, i) for tid, t in self.tracks.items() for i, b in enumerate(boxes)), reverse=True
        )
        used_t, used_d, out = set(), set(), {}
        for score, tid, i in pairs:
            if score < self.iou_threshold:
                break
            if tid in used_t or i in used_d:
                continue
            used_t.add(tid)
            used_d.add(i)
            out[i] = tid
        return out

    def _event(self, kind: str, t: Track, now: float, previous: str | None = None) -> TrackEvent:
        emotion = t.emotion if kind != "appear" else t.candidate
        conf = float(t.probs[self.labels.index(emotion)]) if emotion else 0.0
        return TrackEvent(
            kind,
            t.id,
            emotion or "unknown",
            previous,
            conf,
            {lab: round(float(p), 4) for lab, p in zip(self.labels, t.probs, strict=True)},
            t.box,
            now - t.first_seen,
        )

    def due(self, now: float, boxes: list[Box], min_interval_s: float) -> list[float | None]:
        """Which detections need classifying now, and how stale each is: inf for a new face; for a tracked
        one the seconds since its last classification, when at least `min_interval_s` (0: every time); None
        when it is not due."""
        matches = self._match(boxes)
        out: list[float | None] = []
        for i in range(len(boxes)):
            age = now - self.tracks[matches[i]].last_classified if i in matches else math.inf
            out.append(age if age >= min_interval_s - 1e-6 else None)
        return out

    def update(self, now: float, boxes: list[Box], probs: list[np.ndarray | None]) -> list[TrackEvent]:
        """Detections of one frame; probs[i] None: box i was not classified this time (its track keeps its
        probabilities). Every new box must come with probabilities (see `due`)."""
        events: list[TrackEvent] = []
        matches = self._match(boxes)
        for i, (box, p) in enumerate(zip(boxes, probs, strict=True)):
            tid = matches.get(i)
            if tid is None:
                if p is None:
                    raise ValueError("a new face needs its probabilities (Tracker.due says which)")
                tid, self.next_id = self.next_id, self.next_id + 1
                self.tracks[tid] = Track(tid, box, np.asarray(p, np.float32), now, now, now)
            else:
                t = self.tracks[tid]
                t.box, t.last_seen = box, now
                if p is not None:
                    w = self._weight(now - t.last_classified)
                    t.probs = (1.0 - w) * t.probs + w * np.asarray(p, np.float32)
                    t.last_classified = now
            events.extend(self._hysteresis(self.tracks[tid], now))
        return events + self.age(now)

    def _weight(self, dt: float) -> float:
        """Weight of a new observation dt seconds after the previous one: 1 - exp(-dt / smoothing_s)."""
        return 1.0 if self.smoothing_s <= 0 else 1.0 - math.exp(-max(dt, 0.0) / self.smoothing_s)

    def age(self, now: float) -> list[TrackEvent]:
        """Tracks unseen for longer than max_missing_s leave."""
        events = []
        for tid in [tid for tid, t in self.tracks.items() if now - t.last_seen > self.max_missing_s]:
            t = self.tracks.pop(tid)
            if t.emotion is not None:
                events.append(self._event("leave", t, t.last_seen))
        return events

    def _hysteresis(self, t: Track, now: float) -> list[TrackEvent]:
        top = int(np.argmax(t.probs))
        label, conf = self.labels[top], float(t.probs[top])
        if conf < self.min_confidence:
            t.candidate = None
            return []
        if label != t.candidate:
            t.candidate, t.candidate_since = label, now
        if label == t.emotion or now - t.candidate_since < self.min_duration_s:
            return []
        previous, t.emotion = t.emotion, label
        return [self._event("appear" if previous is None else "change", t, now, previous)]

    def flush(self, now: float) -> list[TrackEvent]:
        """Every reported track leaves (clean shutdown)."""
        events = [self._event("leave", t, now) for t in self.tracks.values() if t.emotion is not None]
        self.tracks.clear()
        return events
