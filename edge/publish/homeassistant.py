"""Home Assistant MQTT discovery: a dominant-emotion sensor and an emotion event entity per camera."""

from __future__ import annotations

import json

from edge import __version__


class Discovery:
    def __init__(self, cfg, topics: dict[str, str]):
        self.cfg = cfg
        self.topics = topics
        self.prefix = cfg.homeassistant.discovery_prefix
        self.node = f"emotion_edge_{cfg.device_id}_{cfg.camera.name}".replace("-", "_").replace(".", "_")

    def configs(self) -> dict[str, dict]:
        device = {"identifiers": [f"emotion_edge_{self.cfg.device_id}"], "name": f"emotion-edge {self.cfg.device_id}",
                  "manufacturer": "emotion-edge", "sw_version": __version__}
        availability = {"availability_topic": self.topics["status"],
                        "availability_template": "{{ 'online' if value_json.state == 'online' else 'offline' }}"}
        return {
            f"{self.prefix}/sensor/{self.node}/emotion/config": {
                "name": f"{self.cfg.camera.name} dominant emotion", "unique_id": f"{self.node}_emotion",
                "state_topic": self.topics["state"], "value_template": "{{ value_json.dominant_emotion }}",
                "json_attributes_topic": self.topics["state"], "icon": "mdi:emoticon-outline", "device": device, **availability},
            f"{self.prefix}/event/{self.node}/emotion_event/config": {
                "name": f"{self.cfg.camera.name} emotion event", "unique_id": f"{self.node}_event",
                "state_topic": self.topics["events"], "event_types": ["appear", "change", "leave"],
                "device": device, **availability},
        }

    def publish(self, client) -> None:
        for topic, payload in self.configs().items():
            client.publish(topic, json.dumps(payload), qos=1, retain=True)
