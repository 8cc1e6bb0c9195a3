"""Fault state of one component after start-up: logged once per state change, counted, never fatal."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class FaultState:
    """`fail()` on every failed attempt, `ok()` on success. The first failure and the recovery are logged
    (warning), repeats are not; `outages` counts episodes, `attempts` the failures of the current one."""

    def __init__(self, name: str):
        self.name = name
        self.failing = False
        self.outages = 0
        self.attempts = 0
        self.total_failures = 0
        self.since_mono: float | None = None
        self.last_error = ""

    def fail(self, error: object) -> bool:
        """Record a failure; True when it starts a new episode (and was logged)."""
        self.attempts += 1
        self.total_failures += 1
        self.last_error = str(error)
        if self.failing:
            log.debug("%s: still failing (attempt %d): %s", self.name, self.attempts, error)
            return False
        self.failing = True
        self.outages += 1
        self.since_mono = time.monotonic()
        log.warning("%s: %s; retrying (logged again when it recovers)", self.name, error)
        return True

    def ok(self) -> None:
        if self.failing:
            lasted = time.monotonic() - (self.since_mono or time.monotonic())
            log.warning("%s: recovered after %.1f s and %d failed attempt(s)", self.name, lasted, self.attempts)
        self.failing = False
        self.attempts = 0
        self.since_mono = None

    def as_dict(self) -> dict:
        return {"state": "failing" if self.failing else "ok", "outages": self.outages, "failures": self.total_failures}
