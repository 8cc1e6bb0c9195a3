"""Pace file-like sources to a frame rate so they behave like a camera."""

from __future__ import annotations

import time


class Pacer:
    def __init__(self, fps: float, enabled: bool):
        self.period = 1.0 / fps if enabled and fps > 0 else 0.0
        self.next_t = None

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self.next_t is None or now - self.next_t > 1.0:  # first frame, or we fell far behind: resync
            self.next_t = now
        elif self.next_t > now:
            time.sleep(self.next_t - now)
        self.next_t += self.period
