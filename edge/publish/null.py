"""A publisher that sends nothing but serialises every payload like the real ones (bench and soak)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class NullPublisher:
    def __init__(self) -> None:
        self.bytes = 0  # serialised payload bytes, so the JSON work is measured too
        self.seq: dict[str, int] = {}
        self.published: dict[str, int] = {}  # payloads per kind (events, state, stats, summary)

    def start(self) -> None:
        pass

    def durable(self, kind: str, make_payload: Callable[[int], dict[str, Any]]) -> None:
        self.seq[kind] = self.seq.get(kind, 0) + 1
        self._count(kind, make_payload(self.seq[kind]))

    def transient(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        self._count(kind, payload)

    def _count(self, kind: str, payload: dict[str, Any]) -> None:
        self.bytes += len(json.dumps(payload))
        self.published[kind] = self.published.get(kind, 0) + 1

    def health(self) -> dict[str, Any]:
        return {"publisher": "null"}

    def close(self, timeout_s: float = 0.0) -> None:
        pass
