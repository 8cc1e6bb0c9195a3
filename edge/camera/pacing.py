"""Pace file-like sources to a frame rate so they behave like a camera."""

from __future__ import annotations

import time


class Pacer:
    def __init__(self, fps: float, enabled: bool):
        self.period = 1.0 / fps if enabled and fps > 0 else 0.0
        self.next_t: float | None = None

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        t = self.next_t
        if t is None or now - t > 1.0:  # first frame, or we fell far behind: resync
            t = now
        elif t > now:
            time.sleep(t - now)
        self.next_t = t + self.period
