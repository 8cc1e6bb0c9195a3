#!/usr/bin/env bash
# Benchmark this board in one command (fresh Debian / Raspberry Pi OS 64-bit / Jetson):
#   bash deploy/bench.sh [emotion-edge bench options]
# Sets up .venv like deploy/demo.sh, then runs the real pipeline on the synthetic 640x480 clip
# (default: one face, then the camera-rate scenes — CPU per camera second, gated and ungated; any
# `emotion-edge bench` option overrides) and writes bench-HOST.json, which is the format of
# tests/bench/reference/<device>.json; then prints every shipped model's per-face latency and size,
# int8 and float, 1 and N threads.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/device-venv.sh
source deploy/device-venv.sh

host=$(hostname -s 2>/dev/null || echo device)
if (($#)); then
    .venv/bin/emotion-edge bench "$@"
else
    .venv/bin/emotion-edge bench --faces 1 --camera-rate --label "$host" --json "bench-$host.json"
    echo "wrote bench-$host.json"
fi
.venv/bin/emotion-edge bench --all-models
