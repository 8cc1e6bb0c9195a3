#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian / Raspberry Pi OS machine, then run them.
#   bash tests/run.sh [pytest args]
# Installs (apt, as root or via sudo): mosquitto, mosquitto-clients, shellcheck, chromium (the report's
# browser test), openssl (TLS test certificates), systemd-container + debootstrap (tests/system: the installed
# service under a real systemd; its Debian root is cached in /var/cache/emotion-edge-system). Creates .venv with the package, its 'train' and 'test' extras, fetches the
# sha256-pinned face detectors, builds .venv-ha (a real Home Assistant core, tests/homeassistant/ha-env.sh) beside it,
# runs ruff (lint + format) and mypy, then pytest. FER2013 is read from ../shared/data/fer2013
# (override with EMOTION_EDGE_FER2013); tests that need it are skipped with a reason when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto mosquitto-clients shellcheck chromium openssl systemd systemd-container debootstrap)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
# A real Home Assistant core for tests/test_homeassistant.py, in its own environment (it pins paho-mqtt 1.6.1):
# built in the background while .venv installs, and waited for before pytest. A failed build fails the run.
HA_LOG=$(mktemp)
trap 'rm -f "$HA_LOG"' EXIT
PYTHON="$PY" bash tests/homeassistant/ha-env.sh >"$HA_LOG" 2>&1 &
HA_PID=$!
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[train,test]'
.venv/bin/emotion-edge fetch
# The code checks itself before the tests run: lint, format and types (configured in pyproject.toml).
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if ! wait "$HA_PID"; then
    grep -v '^WARNING: Location' "$HA_LOG" | tail -n 30 >&2
    echo "tests/run.sh: building .venv-ha (Home Assistant) failed (output above); fix: bash tests/homeassistant/ha-env.sh" >&2
    exit 1
fi
tail -n 1 "$HA_LOG"
rm -f "$HA_LOG"
export EMOTION_EDGE_ARTIFACTS=${EMOTION_EDGE_ARTIFACTS:-$PWD/.artifacts}  # screenshots land here
# Two pytest workers (pytest-xdist), a test file each at a time: the session fixtures a file shares (the smoke
# suite's trained models) are built once, and the tests that wait (broker outages, camera faults, the systemd
# boot) overlap with the ones that compute. EMOTION_EDGE_TEST_WORKERS=0 runs them in one process.
WORKERS=${EMOTION_EDGE_TEST_WORKERS:-2}
exec .venv/bin/python -m pytest -n "$WORKERS" --dist loadfile "$@"
