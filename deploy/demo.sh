#!/usr/bin/env bash
# The main job on a fresh Debian / Raspberry Pi OS (64-bit) machine, in one command:
#   bash deploy/demo.sh [seconds]
# Sets up .venv (device dependencies only: numpy, OpenCV, paho-mqtt, ai-edge-litert), fetches the
# sha256-pinned face detectors and the public-domain demo image, builds the demo clip, and runs the
# daemon on it with the shipped production model. Events go to a private Mosquitto started for the demo
# when mosquitto is installed (so a broker already on port 1883, perhaps one that wants a login, is never
# touched); otherwise to a broker on localhost:1883 if it accepts anonymous clients; otherwise to stdout.
# Either way they are printed as they arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-20}

# shellcheck source=deploy/device-venv.sh
source deploy/device-venv.sh

port=1883
broker_pid=""
if command -v mosquitto >/dev/null; then
    port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mosquitto -p "$port" >/dev/null 2>&1 &
    broker_pid=$!
    trap 'kill "$broker_pid" 2>/dev/null || true' EXIT
    sleep 0.5
    echo "demo: started a private mosquitto on 127.0.0.1:$port for this demo"
fi
.venv/bin/emotion-edge demo --duration "$SECONDS_TO_RUN" --host 127.0.0.1 --port "$port"
