"""Home Assistant MQTT discovery: one HA device per camera (one running daemon), its sensors and event entity.

What is announced (all QoS 1, sentence-case names under the device, `has_entity_name`):
- Dominant emotion (sensor, device_class enum) with a small attribute set (faces, counts);
- Faces and one "<Emotion> faces" count per label (state_class measurement);
- Emotion event (event entity: appear / change / leave);
- diagnostics: Status (enum online/offline/stopped, readable while the daemon is away), Processing rate,
  Outbox depth, and CPU temperature where the board reports one.

Every config topic announced is recorded beside the outbox (`homeassistant-discovery.json`), so a renamed
camera or a disabled integration removes what it announced before (an empty retained config), instead of
leaving orphans that keep mirroring the topics.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from edge import __version__

log = logging.getLogger(__name__)

RECORD_NAME = "homeassistant-discovery.json"


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text).lower()


class Discovery:
    def __init__(
        self, cfg, topics: dict[str, str], labels: tuple[str, ...], model: str, state_dir: Path, has_temperature: bool
    ):
        self.cfg = cfg
        self.topics = topics
        self.labels = labels
        self.model = model
        self.prefix = cfg.homeassistant.discovery_prefix
        self.node = _slug(f"emotion_edge_{cfg.device_id}_{cfg.camera.name}")
        self.record = state_dir / RECORD_NAME
        self.has_temperature = has_temperature

    def _entity(self, component: str, key: str, name: str, available: bool = True, **extra) -> tuple[str, dict]:
        device = {
            "identifiers": [self.node],
            "name": f"Emotion edge {self.cfg.camera.name} ({self.cfg.device_id})",
            "manufacturer": "emotion-edge",
            "model": f"Facial-emotion camera ({self.model})",
            "sw_version": __version__,
        }
        availability = (
            {
                "availability_topic": self.topics["status"],
                "availability_template": "{{ 'online' if value_json.state == 'online' else 'offline' }}",
            }
            if available
            else {}
        )
        payload = {
            "name": name,
            "unique_id": f"{self.node}_{key}",
            "object_id": f"{self.node}_{key}",
            "has_entity_name": True,
            "qos": 1,
            "device": device,
            "origin": {"name": "emotion-edge", "sw_version": __version__},
            **availability,
            **extra,
        }
        return f"{self.prefix}/{component}/{self.node}/{key}/config", payload

    def configs(self) -> dict[str, dict]:
        state, stats = self.topics["state"], self.topics["stats"]
        every = max(30, int(3 * self.cfg.stats_interval_s))  # stats older than this read as unknown
        entities = [
            self._entity(
                "sensor",
                "dominant_emotion",
                "Dominant emotion",
                state_topic=state,
                device_class="enum",
                options=[*self.labels, "none"],
                value_template="{{ value_json.dominant_emotion }}",
                json_attributes_topic=state,
                json_attributes_template="{{ {'faces': value_json.faces, 'counts': value_json.counts} | tojson }}",
                icon="mdi:emoticon-outline",
            ),
            self._entity(
                "sensor",
                "faces",
                "Faces",
                state_topic=state,
                state_class="measurement",
                value_template="{{ value_json.faces }}",
                icon="mdi:account-multiple",
            ),
            *[
                self._entity(
                    "sensor",
                    f"{_slug(label)}_faces",
                    f"{label.capitalize()} faces",
                    state_topic=state,
                    state_class="measurement",
                    value_template=f"{{{{ value_json.counts.{label} | default(0) }}}}",
                )
                for label in self.labels
            ],
            self._entity(
                "event",
                "emotion_event",
                "Emotion event",
                state_topic=self.topics["events"],
                event_types=["appear", "change", "leave"],
                icon="mdi:emoticon-excited-outline",
            ),
            # Diagnostics. Status has no availability: it must read "offline" or "stopped" while the daemon is away.
            self._entity(
                "sensor",
                "status",
                "Status",
                available=False,
                state_topic=self.topics["status"],
                device_class="enum",
                options=["online", "offline", "stopped"],
                value_template="{{ value_json.state }}",
                entity_category="diagnostic",
            ),
            self._entity(
                "sensor",
                "processing_rate",
                "Processing rate",
                state_topic=stats,
                state_class="measurement",
                unit_of_measurement="fps",
                value_template="{{ value_json.processed_fps }}",
                entity_category="diagnostic",
                expire_after=every,
            ),
            self._entity(
                "sensor",
                "outbox_depth",
                "Outbox depth",
                state_topic=stats,
                state_class="measurement",
                value_template="{{ value_json.outbox_depth | default(0) }}",
                entity_category="diagnostic",
                expire_after=every,
            ),
        ]
        if self.has_temperature:
            entities.append(
                self._entity(
                    "sensor",
                    "cpu_temperature",
                    "CPU temperature",
                    state_topic=stats,
                    device_class="temperature",
                    state_class="measurement",
                    unit_of_measurement="°C",
                    value_template="{{ value_json.cpu_temp_c }}",
                    entity_category="diagnostic",
                    expire_after=every,
                )
            )
        return dict(entities)

    def _recorded(self) -> list[str]:
        try:
            data = json.loads(self.record.read_text())
            return [str(t) for t in data.get("topics", [])]
        except (OSError, ValueError, AttributeError):
            return []

    def _remember(self, topics: list[str]) -> None:
        try:
            tmp = self.record.with_suffix(".tmp")
            tmp.write_text(json.dumps({"topics": sorted(topics)}))
            tmp.replace(self.record)
        except OSError as exc:
            log.warning(
                "cannot record the Home Assistant discovery topics in %s (%s); a later rename may leave orphans",
                self.record,
                exc.strerror,
            )

    def publish(self, client) -> None:
        """Announce (retained); remove what an earlier run announced under other topics."""
        configs = self.configs()
        for topic in self._recorded():
            if topic not in configs:
                client.publish(topic, b"", qos=1, retain=True)  # an empty retained config deletes the entity
                log.info("removed stale Home Assistant discovery %s", topic)
        for topic, payload in configs.items():
            client.publish(topic, json.dumps(payload), qos=1, retain=True)
        self._remember(list(configs))

    @staticmethod
    def withdraw(client, state_dir: Path) -> None:
        """Home Assistant disabled: remove everything an earlier run announced."""
        record = state_dir / RECORD_NAME
        try:
            topics = json.loads(record.read_text()).get("topics", [])
        except (OSError, ValueError, AttributeError):
            return
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True)
        log.info("Home Assistant discovery disabled: removed %d announced entities", len(topics))
        record.unlink(missing_ok=True)
