"""Validate emotion-edge's discovery payloads with Home Assistant's own MQTT platform schemas.

Runs inside the side environment made by tests/homeassistant/ha-env.sh (it imports `homeassistant`):
    .venv-ha/bin/python tests/homeassistant/validate_discovery.py < configs.json
stdin: {"<discovery topic>": <payload>, ...}. Prints one line per payload and exits 1 if any is rejected.
"""

from __future__ import annotations

import importlib
import json
import sys

import voluptuous as vol
from homeassistant.components.mqtt.discovery import MQTT_ORIGIN_INFO_SCHEMA
from homeassistant.const import __version__ as ha_version


def main() -> int:
    configs = json.load(sys.stdin)
    bad = 0
    for topic, payload in configs.items():
        component = topic.split("/")[1]
        schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
        try:
            MQTT_ORIGIN_INFO_SCHEMA(payload["origin"])
            schema(dict(payload))
            print(f"ok   {topic}")
        except (vol.Invalid, KeyError) as exc:
            bad += 1
            print(f"FAIL {topic}: {exc}")
    print(f"Home Assistant {ha_version}: {len(configs) - bad} valid, {bad} rejected")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
