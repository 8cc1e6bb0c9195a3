"""Publishers: where events, status, stats and summaries go (MQTT, or stdout for a laptop with no broker)."""

from __future__ import annotations

from .base import Publisher


def make_publisher(cfg, labels: tuple[str, ...] = (), model: str = "") -> Publisher:
    """labels and model name describe the camera to Home Assistant discovery."""
    if cfg.publisher == "stdout":
        from .stdout import StdoutPublisher

        return StdoutPublisher(cfg)
    from .mqtt import MQTTPublisher

    return MQTTPublisher(cfg, labels, model)


__all__ = ["Publisher", "make_publisher"]
