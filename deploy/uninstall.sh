#!/usr/bin/env bash
# Remove the emotion-edge service, venv and user. Keeps /etc/emotion-edge (config, credential) and
# /var/lib/emotion-edge (queued events) unless --purge.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo deploy/uninstall.sh [--purge] [--prefix DIR] [--root DIR] [--dry-run]
  --purge       also delete /etc/emotion-edge, /var/lib/emotion-edge and the broker config written by install.sh
  --prefix DIR  install prefix (default /opt/emotion-edge)
  --root DIR    operate on DIR as if it were /
  --dry-run     print every action, change nothing
USAGE
}
PREFIX=/opt/emotion-edge
ROOT=""
PURGE=0
DRY_RUN=0
while (($#)); do
    case "$1" in
        --purge) PURGE=1 ;;
        --prefix) PREFIX=${2:?}; shift ;;
        --root) ROOT=$(realpath -m "${2:?}"); shift ;;
        --dry-run) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "uninstall.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
run() { if ((DRY_RUN)); then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi; }
R=$ROOT

if [[ -z $ROOT && -d /run/systemd/system ]]; then
    mapfile -t units < <(systemctl list-units --all --plain --no-legend 'emotion-edge*' | awk '{print $1}')
    for u in "${units[@]}" emotion-edge.service; do run systemctl disable --now "$u" 2>/dev/null || true; done
fi
run rm -f "$R/etc/systemd/system/emotion-edge.service" "$R/etc/systemd/system/emotion-edge@.service"
run rm -rf "$R/etc/systemd/system/emotion-edge.service.d" "$R$PREFIX"
[[ -z $ROOT && -d /run/systemd/system ]] && run systemctl daemon-reload
if grep -q '^emotion-edge:' "$R/etc/passwd" 2>/dev/null; then
    run userdel ${ROOT:+--root "$ROOT"} emotion-edge
fi
if ((PURGE)); then
    run rm -rf "$R/etc/emotion-edge" "$R/var/lib/emotion-edge" "$R/etc/mosquitto/conf.d/emotion-edge.conf" "$R/etc/mosquitto/emotion-edge.passwd" "$R/etc/mosquitto/emotion-edge"
    echo "uninstall.sh: removed everything, including config and queued events"
else
    echo "uninstall.sh: removed service, venv and user; kept $R/etc/emotion-edge and $R/var/lib/emotion-edge (use --purge to delete)"
fi
