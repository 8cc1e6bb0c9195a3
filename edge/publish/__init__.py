"""Publishers: where events, status, stats and summaries go (MQTT, or stdout for a laptop with no broker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Publisher

if TYPE_CHECKING:
    from edge.config import Config


def make_publisher(cfg: Config, labels: tuple[str, ...] = (), model: str = "", kind: str | None = None) -> Publisher:
    """kind: "mqtt", "stdout" or "null" (default: cfg.publisher). labels and model name describe the camera to
    Home Assistant discovery. Each return is checked against the Publisher protocol by mypy."""
    kind = kind or cfg.publisher
    if kind == "null":
        from .null import NullPublisher

        return NullPublisher()
    if kind == "stdout":
        from .stdout import StdoutPublisher

        return StdoutPublisher(cfg)
    from .mqtt import MQTTPublisher

    return MQTTPublisher(cfg, labels, model)


__all__ = ["Publisher", "make_publisher"]
