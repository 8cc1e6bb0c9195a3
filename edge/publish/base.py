"""The publisher interface and the topic layout shared by every publisher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


def topics(prefix: str, device_id: str) -> dict[str, str]:
    base = f"{prefix.rstrip('/')}/{device_id}"
    return {k: f"{base}/{k}" for k in ("events", "status", "stats", "summary", "state")}


class Publisher(Protocol):
    def start(self) -> None:
        """Connect (or prepare); raise UserError for a configuration problem such as refused credentials."""
        ...

    def durable(self, kind: str, make_payload: Callable[[int], dict[str, Any]]) -> None:
        """Queue an event or summary that must not be lost; make_payload receives the per-device sequence number."""
        ...

    def transient(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        """Publish stats or state: best effort, newest wins."""
        ...

    def health(self) -> dict[str, Any]:
        """Counters for the stats payload (queue depth, dropped, connected)."""
        ...

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush, publish the 'stopped' status, disconnect."""
        ...
