"""Publish to stdout as JSON lines ({"topic": ..., "payload": ...}): the daemon without a broker."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from edge.core.payload import status_payload

from .base import topics

if TYPE_CHECKING:
    from edge.config import Config


class StdoutPublisher:
    def __init__(self, cfg: Config, stream: TextIO | None = None):
        self.cfg = cfg
        self.stream = stream or sys.stdout
        self.topics = topics(cfg.mqtt.topic_prefix, cfg.device_id)
        self.seq: dict[str, int] = {}  # one contiguous sequence per stream (events, summary)
        self.lock = threading.Lock()

    def _write(self, topic: str, payload: dict) -> None:
        with self.lock:
            self.stream.write(json.dumps({"topic": topic, "payload": payload}) + "\n")
            self.stream.flush()

    def start(self) -> None:
        self._write(self.topics["status"], status_payload("online", self.cfg.device_id))

    def durable(self, kind: str, make_payload: Callable[[int], dict[str, Any]]) -> None:
        self.seq[kind] = self.seq.get(kind, 0) + 1
        self._write(self.topics[kind], make_payload(self.seq[kind]))

    def transient(self, kind: str, payload: dict[str, Any], retain: bool = False) -> None:
        self._write(self.topics[kind], payload)

    def health(self) -> dict[str, Any]:
        return {"publisher": "stdout", "connected": True, "outbox_depth": 0, "outbox_dropped": 0}

    def close(self, timeout_s: float = 5.0) -> None:
        self._write(self.topics["status"], status_payload("stopped", self.cfg.device_id))
