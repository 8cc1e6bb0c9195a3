#!/usr/bin/env bash
# shellcheck disable=SC2016  # wait_for takes conditions in single quotes, evaluated later on purpose
# The product as delivered, under a real systemd: build a minimal Debian root (cached), boot it with
# systemd-nspawn --boot, run deploy/install.sh --with-broker inside from a read-only copy of this checkout,
# and check the installed service with systemctl / journalctl / mosquitto_sub, as the README tells users to.
#
#   sudo bash tests/system/run.sh                 # x86_64 (amd64); about 3-5 minutes with a warm cache
#   sudo bash tests/system/run.sh --arch arm64    # the Raspberry Pi OS 64-bit path under qemu-user-static (slow)
#   options: --keep (leave the container's root in place), --cache DIR (default /var/cache/emotion-edge-system)
#
# Prints one PASS/FAIL line per check and a closing "N passed, N failed"; exit status 1 if any failed,
# 2 if it could not run (not root, tools missing, port 1883 taken on the host).
# Facts of this kind of machine: PID 1 may not be systemd, so nspawn runs with --keep-unit --register=no and
# the container is entered with nsenter; it shares the host network (one container at a time, port 1883
# must be free); pip inside trusts the host's extra CA certificates (copied in).
# arm64 needs three emulator-only workarounds, applied here and never by the product: a Cortex-A72
# /proc/cpuinfo (LiteRT crashes on the host's x86 one), QEMU_CPU=cortex-a72 (qemu's default 'max' CPU gives
# wrong int8 results) and no LoadCredential= (qemu-user rejects clone(CLONE_NEWNS)); seccomp filters are not
# applied under qemu-user, so only the amd64 run checks the system-call policy.
set -euo pipefail

ARCH=amd64
KEEP=0
CACHE=${EMOTION_EDGE_SYSTEM_CACHE:-/var/cache/emotion-edge-system}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
while (($#)); do
    case "$1" in
        --arch) ARCH=${2:?--arch needs amd64 or arm64}; shift ;;
        --keep) KEEP=1 ;;
        --cache) CACHE=${2:?}; shift ;;
        -h|--help) sed -n "3,19p" "$0"; exit 0 ;;
        *) echo "system test: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
cant() { echo "system test: cannot run: $*" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || cant "needs root (systemd-nspawn, debootstrap)"
for tool in systemd-nspawn debootstrap nsenter; do
    command -v "$tool" >/dev/null || cant "$tool missing; fix: apt-get install systemd-container debootstrap util-linux"
done
case "$ARCH" in
    amd64) [[ $(uname -m) == x86_64 ]] || cant "--arch amd64 needs an x86_64 host" ;;
    arm64)
        command -v qemu-aarch64-static >/dev/null || cant "qemu-aarch64-static missing; fix: apt-get install qemu-user-static binfmt-support"
        mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
        [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64 2>/dev/null || true
        [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || cant "binfmt for qemu-aarch64 is not registered (mount binfmt_misc; update-binfmts --enable qemu-aarch64)" ;;
    *) cant "unknown --arch '$ARCH' (amd64 or arm64)" ;;
esac
for port in 1883 8883; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
        cant "port $port is taken on the host; the container shares the host network (stop that broker first)"
    fi
done

T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }
mkdir -p "$CACHE/pip-$ARCH" "$CACHE/apt-$ARCH/partial"

# --- the Debian root (cached as a tarball; every run starts from a fresh copy) ------------------------
mirror=$(grep -hs -m1 -oP '^URIs:\s*\K\S+' /etc/apt/sources.list.d/*.sources | grep -v security | head -n1 || true)
[[ -n $mirror ]] || mirror=$(grep -hs -m1 -oP '^deb\s+(\[[^]]*\]\s+)?\K\S+' /etc/apt/sources.list | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
tarball=$CACHE/bookworm-$ARCH.tar
if [[ ! -s $tarball ]]; then
    stamp "debootstrap bookworm $ARCH from $mirror (cached afterwards in $tarball)"
    build=$(mktemp -d "$CACHE/build.XXXXXX")
    debootstrap --arch="$ARCH" --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv,ca-certificates,git,sudo,procps \
        bookworm "$build/root" "$mirror" >"$build/debootstrap.log" 2>&1 \
        || { tail -n 20 "$build/debootstrap.log" >&2; rm -rf "$build"; cant "debootstrap failed"; }
    tar -C "$build/root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$build"
fi
WORK=$(mktemp -d /var/tmp/emotion-edge-system.XXXXXX)
ROOTFS=$WORK/root
mkdir -p "$ROOTFS"
tar -C "$ROOTFS" -xf "$tarball"
MACHINE=ee-system-$ARCH
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.1.1 %s\n' "$MACHINE" >"$ROOTFS/etc/hosts"
echo "$MACHINE" >"$ROOTFS/etc/hostname"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
fi
nspawn_args=(--boot --keep-unit --register=no -D "$ROOTFS" -M "$MACHINE"
             --bind-ro="$REPO:/src/emotion-edge" --bind="$CACHE/pip-$ARCH:/root/.cache/pip"
             --bind="$CACHE/apt-$ARCH:/var/cache/apt/archives")
if [[ $ARCH == arm64 ]]; then
    # Emulator-only workarounds (see the header); the product is installed unchanged.
    # nspawn cannot bind over /proc/cpuinfo itself (it mounts /proc after the binds): bound after boot, below.
    cat >"$ROOTFS/etc/ee-qemu-cpuinfo" <<'CPUINFO'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Model		: Raspberry Pi 4 Model B Rev 1.4
CPUINFO
    nspawn_args+=(--setenv=QEMU_CPU=cortex-a72)
    mkdir -p "$ROOTFS/etc/systemd/system.conf.d"
    printf '[Manager]\nDefaultEnvironment=QEMU_CPU=cortex-a72\n' >"$ROOTFS/etc/systemd/system.conf.d/qemu.conf"
fi

QEMU_ENV=()
if [[ $ARCH == arm64 ]]; then
    QEMU_ENV=(QEMU_CPU=cortex-a72)
    # No LoadCredential= under qemu-user: the same password file, handed over by a root ExecStartPre instead.
    for unit in emotion-edge.service emotion-edge@.service; do
        mkdir -p "$ROOTFS/etc/systemd/system/$unit.d"
        # ProtectProc=invisible gives the service a fresh /proc: the fake cpuinfo is bound into it there too.
        printf '%s\n' '[Service]' 'LoadCredential=' 'Environment=CREDENTIALS_DIRECTORY=/run/ee-qemu-cred' \
            'BindReadOnlyPaths=/etc/ee-qemu-cpuinfo:/proc/cpuinfo' \
            'ExecStartPre=+/bin/sh -c "install -d -m 0755 /run/ee-qemu-cred && install -m 0444 /etc/emotion-edge/credentials/mqtt-password /run/ee-qemu-cred/"' \
            >"$ROOTFS/etc/systemd/system/$unit.d/qemu.conf"
    done
fi
NSPAWN_PID=""
CPID=""
cleanup() {
    if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    fi
    if ((KEEP)); then echo "system test: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

stamp "booting $MACHINE with systemd-nspawn"
systemd-nspawn "${nspawn_args[@]}" >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
for _ in $(seq 120); do
    for pid in $(pgrep -P "$NSPAWN_PID" 2>/dev/null); do
        # Guard: enter only the container's own systemd, never a host process.
        if [[ "/proc/$pid/root/etc/hostname" -ef "$ROOTFS/etc/hostname" && $(cat "/proc/$pid/comm" 2>/dev/null) == systemd ]]; then CPID=$pid; fi
    done
    [[ -n $CPID ]] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || break
    sleep 0.5
done
[[ -n $CPID ]] || { tail -n 30 "$WORK/console.log" >&2; cant "the container did not boot"; }

# Run a command inside the container (as root, in its namespaces, with a login-like environment).
C() {
    nsenter -t "$CPID" -m -u -i -n -p -r -w \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt "${QEMU_ENV[@]}" "$@"
}
Csh() { C bash -c "$1"; }
for _ in $(seq 120); do
    state=$(C systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 1
done
stamp "container up ($state)"
if [[ $ARCH == arm64 ]]; then
    C mount --bind /etc/ee-qemu-cpuinfo /proc/cpuinfo || cant "could not bind the fake /proc/cpuinfo"
fi

PASSED=0
FAILED=0
FAILURES=()
ok() { PASSED=$((PASSED + 1)); echo "PASS $1${2:+ ($2)}"; }
bad() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); echo "FAIL $1: $2"; }
prop() { C systemctl show "${2:-emotion-edge.service}" -p "$1" --value; }
wait_for() {  # wait_for SECONDS 'shell condition run on the host'
    local until=$(($(date +%s) + $1))
    while (($(date +%s) < until)); do
        if eval "$2"; then return 0; fi
        sleep 1
    done
    return 1
}
CRED=/etc/emotion-edge/credentials/mqtt-password
# The README's subscribe command, with the installed credentials.
SUB="mosquitto_sub -h localhost -u emotion-edge -P \"\$(sudo cat $CRED)\""

# --- install ------------------------------------------------------------------------------------------
stamp "deploy/install.sh --with-broker (read-only checkout at /src/emotion-edge)"
if Csh "cd /src/emotion-edge && deploy/install.sh --with-broker" >"$WORK/install.log" 2>&1; then
    ok "install.sh --with-broker from a read-only checkout" "$(grep -c . "$WORK/install.log") lines of output"
else
    bad "install.sh --with-broker" "exit $?; last lines: $(tail -n 8 "$WORK/install.log" | tr '\n' '|')"
fi
stamp "installed"

if [[ $(prop ActiveState) == active && $(prop Type) == notify ]]; then
    ok "active through READY (Type=notify)" "$(prop SubState), main PID $(prop MainPID)"
else
    bad "active through READY" "ActiveState=$(prop ActiveState) Result=$(prop Result); $(C journalctl -u emotion-edge -n 5 -o cat --no-pager | tr '\n' '|')"
fi
if wait_for 40 '[[ $(prop StatusText) == *fps* ]]'; then ok "STATUS shows the frame rate" "$(prop StatusText)"; else bad "STATUS" "StatusText='$(prop StatusText)'"; fi

event=$(Csh "timeout 60 $SUB -t 'emotion-edge/+/events' -C 1 -W 50" 2>&1 || true)
if [[ $event == *'"schema_version"'* && $event == *'"emotion"'* ]]; then
    ok "an event arrives with the installed credentials" "$(echo "$event" | head -c 120)…"
else
    bad "event with the installed credentials" "got: $(echo "$event" | head -c 300)"
fi
anon=$(C timeout 20 mosquitto_sub -h localhost -t 'emotion-edge/#' -C 1 -W 10 2>&1) && anon_rc=0 || anon_rc=$?
if ((anon_rc != 0)) && [[ $anon == *"not authori"* ]]; then ok "anonymous subscriber refused" "$anon"; else bad "anonymous refused" "rc $anon_rc: $anon"; fi
if Csh "grep -qx 'listener 1883 127.0.0.1' /etc/mosquitto/conf.d/emotion-edge.conf && grep -qx 'autosave_interval 10' /etc/mosquitto/conf.d/emotion-edge.conf"; then
    ok "broker on loopback only, persistence autosaved"
else
    bad "broker config" "$(C cat /etc/mosquitto/conf.d/emotion-edge.conf | tr '\n' '|')"
fi

if out=$(C sudo -u emotion-edge /opt/emotion-edge/venv/bin/emotion-edge check-config --config /etc/emotion-edge/config.toml 2>&1); then
    ok "the README's check-config command" "$out"
else
    bad "check-config as documented" "$out"
fi
if out=$(C /opt/emotion-edge/venv/bin/emotion-edge models 2>&1) && [[ $out == *multiclass4-resnet* ]]; then
    ok "installed CLI finds its models without the unit's environment"
else
    bad "emotion-edge models" "$out"
fi
st=$(C systemctl status emotion-edge --no-pager 2>&1 || true)
jl=$(C journalctl -u emotion-edge --no-pager -o cat 2>&1 || true)
if [[ $st == *"active (running)"* && $jl == *"running: model"* ]]; then ok "systemctl status / journalctl -u emotion-edge"; else bad "status/journal" "$(echo "$st" | head -n 3 | tr '\n' '|')"; fi
warn=$(C journalctl -b --no-pager -o cat 2>&1 | grep -E 'emotion-edge.*\.service:[0-9]+:' | head -n 3 || true)
if [[ -n $warn ]]; then bad "systemd accepts every line of the units" "$warn"; else ok "systemd accepts every line of the units"; fi
if [[ $jl == *Traceback* ]]; then bad "journal has no traceback" "$(echo "$jl" | grep -m3 -A3 Traceback | tr '\n' '|')"; fi

sec=$(C systemd-analyze security emotion-edge.service --no-pager 2>&1 | tail -n 1)
score=$(echo "$sec" | grep -oP 'level for emotion-edge.service:\s*\K[0-9.]+' || echo 99)
if awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then ok "systemd-analyze security <= 2.0" "$sec"; else bad "security" "$sec"; fi

# --- a second run changes nothing (no broker or service restart) ----------------------------------------
mpid=$(prop MainPID mosquitto.service)
epid=$(prop MainPID)
if Csh "cd /src/emotion-edge && deploy/install.sh --with-broker" >"$WORK/install2.log" 2>&1 \
    && [[ $(prop MainPID mosquitto.service) == "$mpid" && $(prop MainPID) == "$epid" ]]; then
    ok "a second install.sh run restarts nothing" "mosquitto $mpid, emotion-edge $epid"
else
    bad "second install run" "mosquitto $mpid -> $(prop MainPID mosquitto.service), service $epid -> $(prop MainPID); $(tail -n 3 "$WORK/install2.log" | tr '\n' '|')"
fi

# --- --broker-lan: the LAN sees the broker only through TLS ----------------------------------------------
if Csh "cd /src/emotion-edge && deploy/install.sh --broker-lan" >"$WORK/install3.log" 2>&1; then
    host=$(C hostname -s)
    lan_ip=$(C hostname -I | awk '{print $1}')
    tls=$(Csh "mosquitto_sub -h $host -p 8883 --cafile /etc/mosquitto/emotion-edge/ca.crt -u emotion-edge -P \"\$(cat $CRED)\" -t 'emotion-edge/+/status' -C 1 -W 10" 2>&1 || true)
    plain=$(Csh "mosquitto_sub -h ${lan_ip:-192.0.2.1} -p 1883 -u emotion-edge -P \"\$(cat $CRED)\" -t '#' -C 1 -W 3" 2>&1) && plain_rc=0 || plain_rc=$?
    if [[ $tls == *'"state"'* ]] && ((plain_rc != 0)) && [[ -n $lan_ip ]]; then
        ok "--broker-lan: TLS on 8883 verified by host name; plain 1883 not on the LAN" "$host, $lan_ip: ${plain:0:60}"
    else
        bad "--broker-lan" "tls: ${tls:0:200}; plain on $lan_ip rc $plain_rc: ${plain:0:100}; $(tail -n 3 "$WORK/install3.log" | tr '\n' '|')"
    fi
else
    bad "install.sh --broker-lan" "$(tail -n 5 "$WORK/install3.log" | tr '\n' '|')"
fi
wait_for 30 '[[ $(prop ActiveState) == active ]]' || true

# --- SIGTERM: clean stop, retained status "stopped", exit 0 --------------------------------------------
C kill -TERM "$(prop MainPID)"
if wait_for 30 '[[ $(prop ActiveState) == inactive ]]' && [[ $(prop ExecMainStatus) == 0 && $(prop Result) == success ]]; then
    status=$(Csh "$SUB -t 'emotion-edge/+/status' -C 1 -W 5" 2>&1 || true)
    if [[ $status == *'"stopped"'* ]]; then ok "SIGTERM: exit 0, retained status stopped"; else bad "status after SIGTERM" "$status"; fi
else
    bad "SIGTERM" "ActiveState=$(prop ActiveState) ExecMainStatus=$(prop ExecMainStatus) Result=$(prop Result)"
fi
C systemctl start emotion-edge.service || true

# --- SIGSTOP: the watchdog restarts it -------------------------------------------------------------------
pid=$(prop MainPID)
t_stop=$(date +%s)
C kill -STOP "$pid"
if wait_for 120 '[[ $(prop NRestarts) -ge 1 && $(prop ActiveState) == active && $(prop MainPID) != "$pid" ]]'; then
    jl=$(C journalctl -u emotion-edge --no-pager -o cat 2>&1 || true)
    if [[ $jl == *"Watchdog timeout"* ]]; then
        ok "SIGSTOP: watchdog restart" "after $(($(date +%s) - t_stop)) s"
    else
        bad "watchdog" "restarted but no 'Watchdog timeout' in the journal"
    fi
else
    bad "watchdog" "NRestarts=$(prop NRestarts) ActiveState=$(prop ActiveState) MainPID=$(prop MainPID)"
fi

# --- a bad config fails once: exit 2, one line, no restart -------------------------------------------------
C cp /etc/emotion-edge/config.toml /root/config.good
Csh "sed -i '1i colour = \"blue\"' /etc/emotion-edge/config.toml"
C systemctl restart emotion-edge.service >/dev/null 2>&1 || true
sleep 8  # longer than RestartSec=5: a restart would have happened by now
errs=$(C journalctl -u emotion-edge --no-pager -o cat --since "-20s" 2>&1 | grep -c 'emotion-edge: error:' || true)
line=$(C journalctl -u emotion-edge --no-pager -o cat --since "-20s" 2>&1 | grep -m1 'emotion-edge: error:' || true)
if [[ $(prop ActiveState) == failed && $(prop NRestarts) == 0 && $(prop ExecMainStatus) == 2 && $errs == 1 ]]; then
    ok "bad config: fails once (NRestarts 0, exit 2)" "$line"
else
    bad "bad config" "ActiveState=$(prop ActiveState) NRestarts=$(prop NRestarts) ExecMainStatus=$(prop ExecMainStatus) error lines=$errs"
fi
C cp /root/config.good /etc/emotion-edge/config.toml
C systemctl reset-failed emotion-edge.service || true

# --- a network camera that goes away after start and comes back ----------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
Csh "mkdir -p /srv/mjpeg && /opt/emotion-edge/venv/bin/python -c \"
import cv2
cap = cv2.VideoCapture('/opt/emotion-edge/models/assets/demo-astronaut.avi')
for i in range(90):
    ok, f = cap.read()
    if i % 3 == 0: cv2.imwrite('/srv/mjpeg/%03d.jpg' % i, f)
\""
mjpeg() { C systemd-run --quiet --unit=ee-mjpeg -p DynamicUser=yes /usr/bin/python3 /src/emotion-edge/tests/system/mjpeg_server.py --port "$port" --dir /srv/mjpeg; }
mjpeg
Csh "sed -i 's/^stats_interval_s = .*/stats_interval_s = 2.0/' /etc/emotion-edge/config.toml && python3 - <<'PY'
import re
p = '/etc/emotion-edge/config.toml'
s = open(p).read()
block = '[camera]\ntype = \"stream\"\nname = \"cam0\"\nurl = \"http://127.0.0.1:$port/stream.mjpg\"\nreconnect_max_s = 2.0\n\n'
open(p, 'w').write(re.sub(r'\[camera\]\n.*?(?=\n\[)', block.rstrip('\n') + '\n', s, flags=re.S))
PY"
C systemctl restart emotion-edge.service || true
pid=$(prop MainPID)
restarts=$(prop NRestarts)
last_stats() { Csh "$SUB -t 'emotion-edge/+/stats' -C 1 -W ${1:-5}" 2>/dev/null || true; }
recovered() {  # the newest stats say: camera ok again after at least one outage, frames flowing
    local s
    s=$(last_stats)
    [[ $s =~ \"camera_reconnects\":\ ([0-9]+) ]] && ((BASH_REMATCH[1] >= 1)) || return 1
    [[ $s == *'"state": "ok"'* && $s =~ \"processed_fps\":\ ([0-9.]+) && ${BASH_REMATCH[1]} != 0.0 ]] || return 1
    FPS=${BASH_REMATCH[1]}
}
stats=$(last_stats 20)
if [[ $(prop ActiveState) == active && $stats == *'"processed_fps"'* ]]; then
    C systemctl stop ee-mjpeg.service
    sleep 12
    during=$(last_stats)
    alive=$([[ $(prop ActiveState) == active && $(prop MainPID) == "$pid" ]] && echo yes || echo no)
    mjpeg
    if [[ $alive == yes ]] && wait_for 60 'recovered' && [[ $(prop MainPID) == "$pid" && $(prop NRestarts) == "$restarts" ]]; then
        ok "camera lost for 12 s after start: service kept running and recovered" \
            "processed_fps $FPS, same PID $pid; STATUS during the outage: $(echo "$during" | grep -o '"state": "[a-z]*"')"
    else
        bad "camera loss" "alive during outage: $alive; MainPID $pid -> $(prop MainPID); NRestarts $restarts -> $(prop NRestarts); stats: $(last_stats | head -c 300)"
    fi
else
    bad "stream camera start" "ActiveState=$(prop ActiveState); stats: $(echo "$stats" | head -c 200); $(C journalctl -u emotion-edge -n 5 -o cat --no-pager | tr '\n' '|')"
fi
C systemctl stop ee-mjpeg.service 2>/dev/null || true
C cp /root/config.good /etc/emotion-edge/config.toml

# --- one instance per camera ------------------------------------------------------------------------------
Csh "sed 's/^device_id = .*/device_id = \"cam1-test\"/; s/^name = \"cam0\"/name = \"cam1\"/' /etc/emotion-edge/config.toml > /etc/emotion-edge/cam1.toml"
if C systemctl start emotion-edge@cam1.service && [[ $(prop ActiveState emotion-edge@cam1.service) == active ]] \
    && Csh "test -d /var/lib/emotion-edge/cam1"; then
    ok "template instance emotion-edge@cam1" "state in /var/lib/emotion-edge/cam1"
else
    bad "emotion-edge@cam1" "$(C journalctl -u emotion-edge@cam1 -n 5 -o cat --no-pager | tr '\n' '|')"
fi
C systemctl stop emotion-edge@cam1.service || true
C rm -f /etc/emotion-edge/cam1.toml

# --- uninstall keeps config and queued events; --purge removes them ---------------------------------------
if Csh "/src/emotion-edge/deploy/uninstall.sh" >"$WORK/uninstall.log" 2>&1 \
    && ! Csh "test -e /etc/systemd/system/emotion-edge.service || test -e /opt/emotion-edge || getent passwd emotion-edge" \
    && Csh "test -f /etc/emotion-edge/config.toml && test -d /var/lib/emotion-edge"; then
    ok "uninstall.sh removes service, venv and user; keeps config and queued events"
else
    bad "uninstall" "$(tail -n 3 "$WORK/uninstall.log" | tr '\n' '|')"
fi
if Csh "/src/emotion-edge/deploy/uninstall.sh --purge" >>"$WORK/uninstall.log" 2>&1 \
    && ! Csh "test -e /etc/emotion-edge || test -e /var/lib/emotion-edge || test -e /etc/mosquitto/conf.d/emotion-edge.conf"; then
    ok "uninstall.sh --purge removes config, state and broker config"
else
    bad "uninstall --purge" "$(tail -n 3 "$WORK/uninstall.log" | tr '\n' '|')"
fi

stamp "done on $ARCH at commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ((FAILED)); then
    echo "--- journal of emotion-edge (last 40 lines) ---"
    C journalctl -u 'emotion-edge*' -n 40 --no-pager -o short-monotonic 2>&1 || true
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
