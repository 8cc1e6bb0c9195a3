#!/usr/bin/env bash
# Build .venv-ha: Home Assistant core (the newest release for this Python: 2024.3.3 on 3.11), to validate
# emotion-edge's MQTT discovery payloads with HA's own platform schemas (tests/test_homeassistant.py).
# HA pins its own paho-mqtt (1.6.1), so it lives in a side environment, never in .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
HA_VERSION=${HA_VERSION:-2024.3.3}
[[ -x .venv-ha/bin/python ]] || "$PY" -m venv .venv-ha
.venv-ha/bin/python -m pip install -q --upgrade pip
.venv-ha/bin/python -m pip install -q "homeassistant==$HA_VERSION" "paho-mqtt==1.6.1" "josepy<2"
# What HA 2024.3.3's always-loaded integrations (frontend, onboarding, file_upload for mqtt, backup, hardware)
# require, pinned as in their manifests: HA would otherwise pip-install them itself at its first start.
.venv-ha/bin/python -m pip install -q "janus==1.0.0" "Pillow==10.2.0" "psutil-home-assistant==0.0.1" \
    "securetar==2024.2.1" "home-assistant-frontend==20240307.0" "SQLAlchemy==2.0.27" "fnv-hash-fast==0.5.0" "numpy==1.26.0"
.venv-ha/bin/python -c 'import homeassistant.components.mqtt.sensor, homeassistant.components.mqtt.event' \
    && echo "ha-env: Home Assistant $HA_VERSION ready in .venv-ha"
