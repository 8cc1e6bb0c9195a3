# Sourced by deploy/demo.sh and deploy/bench.sh (cwd: the repository root): create or update .venv with
# the device dependencies only (numpy, OpenCV, paho-mqtt, ai-edge-litert) and fetch the sha256-pinned
# face detectors and the public-domain demo image.
# shellcheck shell=bash
PY=${PYTHON:-python3}
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "${0##*/}: python3-venv is missing; fix: sudo apt-get install -y python3-venv" >&2
    exit 2
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
.venv/bin/emotion-edge fetch >/dev/null
