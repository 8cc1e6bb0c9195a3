"""Publishers: where events, status, stats and summaries go (MQTT, or stdout for a laptop with no broker)."""

from __future__ import annotations

from .base import Publisher


def make_publisher(cfg) -> Publisher:
    if cfg.publisher == "stdout":
        from .stdout import StdoutPublisher

        return StdoutPublisher(cfg)
    from .mqtt import MQTTPublisher

    return MQTTPublisher(cfg)


__all__ = ["Publisher", "make_publisher"]
