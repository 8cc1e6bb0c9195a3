"""Per-stage latency percentiles and rates for the periodic stats payload (time.monotonic())."""

from __future__ import annotations

from collections import deque

import numpy as np

STAGES = ("capture_age", "detect", "preprocess", "classify", "track", "publish", "total")


class Stats:
    def __init__(self, window: int = 600):
        self.samples = {s: deque(maxlen=window) for s in STAGES}
        self.frames = 0
        self.faces = 0
        self.events = 0
        self.frames_at_last = 0
        self.captured_at_last = 0
        self.dropped_at_last = 0
        self.faces_at_last = 0

    def add(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds * 1000.0)

    def latency(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, vals in self.samples.items():
            if vals:
                a = np.fromiter(vals, float)
                out[stage] = {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2)}
        return out

    def interval(self, elapsed_s: float, captured: int, dropped: int) -> dict[str, float]:
        frames = self.frames - self.frames_at_last
        out = {
            "capture_fps": round((captured - self.captured_at_last) / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "processed_fps": round(frames / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "skipped_frames": dropped - self.dropped_at_last,
            "faces_per_frame": round((self.faces - self.faces_at_last) / frames, 2) if frames else 0.0,
        }
        self.frames_at_last, self.captured_at_last, self.dropped_at_last, self.faces_at_last = self.frames, captured, dropped, self.faces
        return out
