"""Motion gating: decide per frame whether the face detector needs to run.

A cheap change detector on a small grey copy of the frame (a running-average background, as Frigate's
motion detector does) finds where the picture changed. The detector then runs:

- with no live track: when something moved, and otherwise only every `idle_detect_interval_s` (a person
  who sat down before the camera started, or stands still, is still found);
- with live tracks: at `detect_hz`, and at once when something moves outside the tracked faces (a new
  face walking in);
- never more often than `max_detect_hz`, so that something that keeps moving (a fan, a screen, a person
  facing away) cannot bring back detection on every frame.

Between detections the tracks keep their last boxes: at 5 Hz a face moves a few pixels between runs,
well inside the tracker's IoU threshold, so following boxes with optical flow or a Kalman filter would
cost more CPU on a Pi than the detector run it saves, for no change in events.

`enabled = false` restores detection on every frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from edge.core.types import Box


class MotionGate:
    def __init__(
        self,
        enabled: bool = True,
        width: int = 160,
        threshold: int = 20,
        min_fraction: float = 0.002,
        idle_detect_interval_s: float = 1.0,
        detect_hz: float = 5.0,
        max_detect_hz: float = 10.0,
        background_rate: float = 0.1,
    ):
        self.enabled = enabled
        self.width = width
        self.threshold = threshold
        self.min_fraction = min_fraction
        self.idle_interval_s = idle_detect_interval_s
        self.track_interval_s = 1.0 / detect_hz
        self.min_interval_s = 1.0 / max_detect_hz
        self.background_rate = background_rate
        self._bg: np.ndarray | None = None
        self.last_detect = -math.inf  # capture time of the latest frame the detector ran on
        self.motion_frames = 0  # frames in which something moved (where it counts)

    def _small(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        size = (self.width, max(1, round(h * self.width / w)))
        # Nearest-neighbour subsampling is 10x cheaper than area averaging; the blur then averages the sensor
        # noise away, which is all area averaging would have added here.
        small = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)

    def moved(self, frame: np.ndarray, ignore: Iterable[Box] = ()) -> bool:
        """Whether enough of the frame changed against the background, outside the `ignore` boxes (frame
        pixels: the tracked faces, whose own movement the tracker follows). Updates the background."""
        small = self._small(frame)
        if self._bg is None or self._bg.shape != small.shape:
            self._bg = small
            return True  # first frame (or a new frame size): everything is new
        mask = cv2.absdiff(small, self._bg) > self.threshold
        cv2.accumulateWeighted(small, self._bg, self.background_rate)
        scale = small.shape[1] / frame.shape[1]
        for b in ignore:  # the person around a tracked face moves with it: head, shoulders, upper body
            x0, y0 = max(0, int((b.x0 - 0.75 * b.width) * scale)), max(0, int((b.y0 - 0.5 * b.height) * scale))
            x1, y1 = int((b.x1 + 0.75 * b.width) * scale) + 1, int((b.y1 + 2.5 * b.height) * scale) + 1
            mask[y0:y1, x0:x1] = False
        return bool(mask.mean() >= self.min_fraction)

    def should_detect(self, now: float, frame: np.ndarray, tracked: list[Box]) -> bool:
        """Run the detector on this frame? `now` is the frame's capture time (time.monotonic())."""
        if self.enabled:
            moved = self.moved(frame, tracked)
            self.motion_frames += moved
            interval = self.track_interval_s if tracked else self.idle_interval_s
            since = now - self.last_detect
            if since < (self.min_interval_s if moved else interval) - 1e-6:
                return False
        self.last_detect = now
        return True


class ClassifyBudget:
    """At most `rate` classifications per second over all faces (a token bucket holding half a second's worth):
    the faces classified longest ago go first, and a new face is always classified at once (it still uses up
    budget). rate 0: no limit. With five faces in view this keeps the cost near that of two."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate * 0.5)
        self.tokens = self.capacity
        self.t: float | None = None

    def select(self, now: float, staleness: list[float | None]) -> list[bool]:
        """staleness as Tracker.due returns it -> which detections to classify now."""
        if self.rate <= 0:
            return [s is not None for s in staleness]
        if self.t is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        new = [i for i, s in enumerate(staleness) if s == math.inf]
        tracked = sorted(
            (i for i, s in enumerate(staleness) if s is not None and s != math.inf),
            key=lambda i: -(staleness[i] or 0.0),
        )
        n = max(0, min(len(tracked), int(self.tokens - len(new))))
        chosen = set(new) | set(tracked[:n])
        self.tokens = max(-self.capacity, self.tokens - len(chosen))
        return [i in chosen for i in range(len(staleness))]
