"""Latency summaries (the one used by stats, bench and evaluate) and the rates of the periodic stats payload."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

QUANTILES = (50, 95, 99)


def latency_summary(samples_ms: Iterable[float]) -> dict[str, float | int]:
    """p50/p95/p99 in ms (3 decimals) and the sample count n; {} for no samples."""
    a = np.fromiter(samples_ms, float)
    if not a.size:
        return {}
    values = np.percentile(a, QUANTILES)
    out: dict[str, float | int] = {f"p{q}": round(float(v), 3) for q, v in zip(QUANTILES, values, strict=True)}
    out["n"] = int(a.size)
    return out


STAGES = ("capture_age", "motion", "detect", "preprocess", "classify", "track", "publish", "total")


class Stats:
    def __init__(self, window: int = 600):
        self.samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self.window = window
        self.frames = 0
        self.faces = 0  # faces in view, summed over frames
        self.events = 0
        self.detector_runs = 0  # frames the motion gate let the detector run on
        self.classifications = 0  # faces classified
        self.frames_at_last = 0
        self.captured_at_last = 0
        self.dropped_at_last = 0
        self.faces_at_last = 0

    def reset_samples(self) -> None:
        """Drop the stage times so far (bench: after the warm-up)."""
        for samples in self.samples.values():
            samples.clear()

    def add(self, stage: str, seconds: float) -> None:
        self.samples[stage].append(seconds * 1000.0)

    def latency(self) -> dict[str, dict[str, float | int]]:
        return {stage: latency_summary(vals) for stage, vals in self.samples.items() if vals}

    def interval(self, elapsed_s: float, captured: int, dropped: int) -> dict[str, float]:
        frames = self.frames - self.frames_at_last
        out = {
            "capture_fps": round((captured - self.captured_at_last) / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "processed_fps": round(frames / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "skipped_frames": dropped - self.dropped_at_last,
            "faces_per_frame": round((self.faces - self.faces_at_last) / frames, 2) if frames else 0.0,
        }
        self.frames_at_last, self.captured_at_last, self.dropped_at_last, self.faces_at_last = (
            self.frames,
            captured,
            dropped,
            self.faces,
        )
        return out
