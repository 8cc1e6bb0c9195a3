#!/usr/bin/env bash
# Install (or upgrade) emotion-edge as a hardened systemd service on a Raspberry Pi, a Jetson or a
# Debian/Ubuntu machine. Safe to re-run: a second run changes nothing; a newer source upgrades.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo deploy/install.sh [options]

Installs apt prerequisites, a system user 'emotion-edge' (groups video), a venv under PREFIX with
the package, the models and the sha256-checked face detectors, /etc/emotion-edge/config.toml (only
if absent: a user's config is never overwritten), the MQTT password as a root-only systemd
credential, and the emotion-edge.service / emotion-edge@.service units; checks the config; enables
and starts the service.

Options:
  --prefix DIR           install prefix (default /opt/emotion-edge)
  --root DIR             install into DIR as if it were / (no apt, no systemctl); for images and tests
  --with-broker          also install a local Mosquitto: password file, no anonymous access, persistence
                         (autosave every 10 s), listening on 127.0.0.1:1883 only
  --broker-lan           with --with-broker: also listen on the LAN, only with TLS on port 8883 (a CA and a
                         server certificate for this host are generated under /etc/mosquitto/emotion-edge/)
  --mqtt-host HOST       broker host written into a new config (default localhost)
  --mqtt-user USER       MQTT user (default emotion-edge when --with-broker, else anonymous)
  --mqtt-password-file F install F's content as the credential (default with --with-broker: generated)
  --platform P           pi | jetson | generic (default: detected)
  --models DIR           models folder to install (default: the source tree's models/)
  --wheel-dir DIR        offline: wheels for pip and the detector (pip --find-links)
  --skip-apt             do not run apt-get
  --no-start             install and enable, but do not start
  --dry-run              print every action, change nothing
  -h, --help             this help
USAGE
}

PREFIX=/opt/emotion-edge
ROOT=""
WITH_BROKER=0
BROKER_LAN=0
MQTT_HOST=localhost
MQTT_USER=""
MQTT_PASSWORD_FILE=""
PLATFORM=""
WHEEL_DIR=""
SKIP_APT=0
NO_START=0
DRY_RUN=0
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODELS_SRC=$SRC/models

die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

while (($#)); do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a value}; shift ;;
        --root) ROOT=$(realpath -m "${2:?--root needs a value}"); shift ;;
        --with-broker) WITH_BROKER=1 ;;
        --broker-lan) WITH_BROKER=1; BROKER_LAN=1 ;;
        --mqtt-host) MQTT_HOST=${2:?}; shift ;;
        --mqtt-user) MQTT_USER=${2:?}; shift ;;
        --mqtt-password-file) MQTT_PASSWORD_FILE=${2:?}; shift ;;
        --platform) PLATFORM=${2:?}; shift ;;
        --wheel-dir) WHEEL_DIR=$(realpath "${2:?}"); shift ;;
        --models) MODELS_SRC=$(realpath "${2:?}"); shift ;;
        --skip-apt) SKIP_APT=1 ;;
        --no-start) NO_START=1 ;;
        --dry-run) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done

# Every change goes through run(): --dry-run prints it instead.
run() {
    if ((DRY_RUN)); then
        printf 'would run:'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}
# Write stdin to a file only if its content differs (keeps re-runs from changing anything).
put() {
    local dest=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 0
    fi
    if ((DRY_RUN)); then
        echo "would write: $dest (mode $mode)"; rm -f "$tmp"; return 0
    fi
    install -D -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
    CHANGED=1
}
CHANGED=0
BROKER_CHANGED=0
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT

[[ $(id -u) -eq 0 || -n $ROOT || $DRY_RUN -eq 1 ]] || die "run as root (sudo), or use --root DIR / --dry-run"

# --- platform -----------------------------------------------------------------------------------
detect_platform() {
    if [[ -r /proc/device-tree/model ]] && tr -d '\0' </proc/device-tree/model | grep -q "Raspberry Pi"; then
        echo pi
    elif [[ -e /etc/nv_tegra_release ]] || { [[ -r /proc/device-tree/compatible ]] && tr '\0' '\n' </proc/device-tree/compatible | grep -q nvidia,tegra; }; then
        echo jetson
    else
        echo generic
    fi
}
[[ -n $PLATFORM ]] || PLATFORM=$(detect_platform)
case "$PLATFORM" in pi|jetson|generic) ;; *) die "unknown platform '$PLATFORM' (pi, jetson, generic)" ;; esac
ARCH=${INSTALL_ARCH:-$(uname -m)}  # INSTALL_ARCH: tests exercise the 32-bit refusal
case "$ARCH" in
    x86_64|aarch64|arm64) ;;
    armv6l|armv7l|armhf) die "32-bit Arm ($ARCH) is not supported: ai-edge-litert has no 32-bit Arm wheels; install the 64-bit Raspberry Pi OS" ;;
    *) die "unsupported CPU architecture $ARCH (needs x86_64 or aarch64)" ;;
esac
if [[ -z $ROOT && -r /etc/os-release ]]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    [[ " ${ID:-} ${ID_LIKE:-} " == *" debian "* || " ${ID:-} ${ID_LIKE:-} " == *" ubuntu "* ]] \
        || die "unsupported OS '${PRETTY_NAME:-unknown}': this installer needs Debian, Ubuntu or Raspberry Pi OS"
fi
say "platform $PLATFORM ($ARCH), prefix $PREFIX${ROOT:+, root $ROOT}"

R=$ROOT
VENV=$PREFIX/venv
ETC=/etc/emotion-edge
CRED=$ETC/credentials/mqtt-password

# --- apt prerequisites -------------------------------------------------------------------------
if [[ -z $ROOT && $SKIP_APT -eq 0 ]]; then
    pkgs=(python3-venv python3-pip)
    [[ $PLATFORM == pi ]] && pkgs+=(python3-picamera2)
    [[ $PLATFORM == jetson ]] && pkgs+=(python3-opencv)   # the system OpenCV has GStreamer (nvarguscamerasrc)
    ((WITH_BROKER)) && pkgs+=(mosquitto mosquitto-clients)
    ((BROKER_LAN)) && pkgs+=(openssl)
    missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if ((${#missing[@]})); then
        run apt-get update -q
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

# --- user ----------------------------------------------------------------------------------------
user_args=(--system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin)
groups=(video)
[[ -n $ROOT ]] && user_args+=(--root "$ROOT")
if ! grep -q '^emotion-edge:' "$R/etc/passwd" 2>/dev/null; then
    for g in "${groups[@]}"; do
        grep -q "^$g:" "$R/etc/group" 2>/dev/null || run groupadd --system ${ROOT:+--root "$ROOT"} "$g"
    done
    run useradd "${user_args[@]}" --groups "$(IFS=,; echo "${groups[*]}")" emotion-edge
fi

# --- venv and package ---------------------------------------------------------------------------
venv_args=()
# picamera2 (Pi) and GStreamer-enabled OpenCV (Jetson) come from apt: the venv must see them.
[[ $PLATFORM == pi || $PLATFORM == jetson ]] && venv_args+=(--system-site-packages)
if [[ ! -x $R$VENV/bin/python ]]; then
    run python3 -m venv "${venv_args[@]}" "$R$VENV"
fi
stamp=$(cd "$SRC" && find pyproject.toml edge -type f -name '*.py' -o -name pyproject.toml | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [[ $(cat "$R$PREFIX/.source-stamp" 2>/dev/null) != "$stamp" ]]; then
    pip_args=(-q --disable-pip-version-check)
    [[ -n $WHEEL_DIR ]] && pip_args+=(--no-index --find-links "$WHEEL_DIR")
    # Build from a clean copy of the package sources: the checkout may be read-only, and building in it
    # as root would leave root-owned build files in the user's tree.
    tar -C "$SRC" --exclude=__pycache__ -cf - pyproject.toml README.md edge trainer | tar -C "$BUILD" -xf -
    run "$R$VENV/bin/python" -m pip install "${pip_args[@]}" --upgrade "$BUILD"
    if [[ $PLATFORM == jetson ]]; then
        # Keep the system OpenCV (GStreamer); the wheel's headless OpenCV would shadow it.
        run "$R$VENV/bin/python" -m pip uninstall -q -y opencv-python-headless
    fi
    echo "$stamp" | put "$R$PREFIX/.source-stamp" 0644
fi

# --- models, detectors, docs -------------------------------------------------------------------
[[ -f $MODELS_SRC/manifest.json ]] || die "no models in $MODELS_SRC (manifest.json missing); fix: pass --models DIR or train them"
for f in "$MODELS_SRC"/manifest.json "$MODELS_SRC"/*.tflite "$MODELS_SRC"/README.md; do
    [[ -e $f ]] || continue
    # shellcheck disable=SC2094  # reads the source tree, writes under the prefix: never the same file
    put "$R$PREFIX/models/$(basename "$f")" 0644 <"$f"
done
put "$R$PREFIX/README.md" 0644 <"$SRC/README.md"
fetch_args=()
[[ -n $WHEEL_DIR ]] && fetch_args+=(--wheel-dir "$WHEEL_DIR")
if ((DRY_RUN)); then
    echo "would run: EMOTION_EDGE_MODELS=$R$PREFIX/models $R$VENV/bin/emotion-edge fetch ${fetch_args[*]}"
else
    EMOTION_EDGE_MODELS="$R$PREFIX/models" "$R$VENV/bin/emotion-edge" fetch "${fetch_args[@]}" >/dev/null
fi

# --- config (never overwritten) and credential ------------------------------------------------
if [[ -z $MQTT_USER && $WITH_BROKER -eq 1 ]]; then MQTT_USER=emotion-edge; fi
DEFAULT_MODEL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["default_model"] or "")' "$MODELS_SRC/manifest.json")
camera_block() {
    case "$PLATFORM" in
        pi) printf 'type = "picamera2"\nname = "cam0"\nwidth = 640\nheight = 480\nfps = 30.0\n' ;;
        jetson) printf 'type = "gstreamer"\nname = "cam0"\npipeline = "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! video/x-raw,width=640,height=480,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"\n' ;;
        *)
            if compgen -G "/dev/video*" >/dev/null; then
                printf 'type = "opencv"\nname = "cam0"\nindex = 0\nwidth = 640\nheight = 480\nfps = 30.0\n'
            else
                printf '# No camera was found at install time (no /dev/video*), so the service starts on the built-in\n'
                printf '# demo clip. With a USB camera attached: type = "opencv", index = 0, then systemctl restart emotion-edge.\n'
                printf 'type = "demo"\nname = "cam0"\n'
            fi ;;
    esac
}
if [[ ! -e $R$ETC/config.toml ]]; then
    {
        echo "# emotion-edge configuration written by deploy/install.sh (never overwritten)."
        echo "# Every option with its default and description: $PREFIX/venv/bin/emotion-edge example-config"
        echo "# Check after editing: sudo -u emotion-edge $VENV/bin/emotion-edge check-config --config $ETC/config.toml"
        echo "device_id = \"$(hostname -s 2>/dev/null || echo edge)\""
        echo "publisher = \"mqtt\""
        echo "stats_interval_s = 10.0"
        echo
        echo "[camera]"
        camera_block
        echo
        echo "[classifier]"
        echo "model = \"$DEFAULT_MODEL\""
        echo "variant = \"int8\""
        echo
        echo "[mqtt]"
        echo "host = \"$MQTT_HOST\""
        echo "port = 1883"
        echo "username = \"$MQTT_USER\""
        echo "# password: systemd credential 'mqtt-password' ($CRED, root-only)"
    } | put "$R$ETC/config.toml" 0644
fi
if [[ -n $MQTT_PASSWORD_FILE ]]; then
    put "$R$CRED" 0600 <"$MQTT_PASSWORD_FILE"
elif ((WITH_BROKER)) && [[ ! -e $R$CRED ]]; then
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' | put "$R$CRED" 0600
fi
[[ -e $R$CRED ]] && run chmod 0700 "$R$ETC/credentials"
[[ -e $R$CRED ]] && run chown root:root "$R$CRED"

# --- local broker ------------------------------------------------------------------------------
# A private CA (10 years) and a server certificate naming this host (its names and addresses) for --broker-lan.
make_broker_tls() {
    local dir=$1 host names ips san tmp
    host=$(hostname -s 2>/dev/null || hostname)
    names=$(printf 'DNS:%s,DNS:%s,DNS:localhost' "$host" "$(hostname -f 2>/dev/null || echo "$host")")
    ips=$(hostname -I 2>/dev/null | tr ' ' '\n' | sed -n '/./s/^/IP:/p' | paste -sd, -)
    san="$names,IP:127.0.0.1${ips:+,$ips}"
    tmp=$(mktemp -d)
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=emotion-edge broker CA $host" \
        -keyout "$tmp/ca.key" -out "$tmp/ca.crt" >/dev/null 2>&1 || die "openssl failed making the broker CA (is openssl installed?)"
    openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" -keyout "$tmp/server.key" -out "$tmp/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 3650 \
        -extfile "$tmp/ext" -out "$tmp/server.crt" >/dev/null 2>&1 || die "openssl failed signing the broker certificate"
    install -d -m 0755 "$dir"
    install -m 0644 "$tmp/ca.crt" "$dir/ca.crt"
    install -m 0644 "$tmp/server.crt" "$dir/server.crt"
    install -m 0640 "$tmp/server.key" "$dir/server.key"
    install -m 0600 "$tmp/ca.key" "$dir/ca.key"
    [[ -z $ROOT ]] && getent group mosquitto >/dev/null && chgrp mosquitto "$dir/server.key"
    rm -rf "$tmp"
}
if ((WITH_BROKER)); then
    passwd_file=/etc/mosquitto/emotion-edge.passwd
    broker_before=$CHANGED
    CHANGED=0
    # Loopback only: the password and the events never cross the LAN in clear. Persistence (on in Debian's
    # mosquitto.conf) saved every 10 s: an event the broker acknowledged survives a broker crash after that.
    tls_dir=/etc/mosquitto/emotion-edge
    {
        printf '# written by emotion-edge deploy/install.sh\nlistener 1883 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence true\nautosave_interval 10\n' "$passwd_file"
        # The LAN only ever sees TLS: the password and the events are encrypted, the server is verified by name.
        if ((BROKER_LAN)); then
            printf '# --broker-lan\nlistener 8883\ncertfile %s/server.crt\nkeyfile %s/server.key\n' "$tls_dir" "$tls_dir"
        fi
    } | put "$R/etc/mosquitto/conf.d/emotion-edge.conf" 0644
    if ((BROKER_LAN)) && [[ ! -e $R$tls_dir/server.crt ]]; then
        if ((DRY_RUN)); then
            echo "would write: $R$tls_dir/ca.crt, server.crt, server.key (a CA and a certificate for $(hostname -f 2>/dev/null || hostname))"
        else
            make_broker_tls "$R$tls_dir"
            CHANGED=1
        fi
    fi
    if ! ((DRY_RUN)); then
        pw=$(cat "$R$CRED")
        # Recreate the password file only when the credential changed (mosquitto_passwd salts each time).
        if [[ ! -e $R$passwd_file || $R$CRED -nt $R$passwd_file ]]; then
            tmp=$(mktemp)
            mosquitto_passwd -b -c "$tmp" "$MQTT_USER" "$pw" >/dev/null 2>&1 || die "mosquitto_passwd failed (is mosquitto installed?)"
            install -D -m 0640 "$tmp" "$R$passwd_file"
            rm -f "$tmp"
            [[ -z $ROOT ]] && getent group mosquitto >/dev/null && chgrp mosquitto "$passwd_file"
            CHANGED=1
        fi
    else
        echo "would write: $R$passwd_file (user $MQTT_USER)"
    fi
    BROKER_CHANGED=$CHANGED
    CHANGED=$((broker_before || CHANGED))
fi

# --- systemd units -----------------------------------------------------------------------------
# One unit source (the template); the plain unit is the same with the instance parts fixed.
template=$SRC/systemd/emotion-edge@.service
sed "s|/opt/emotion-edge|$PREFIX|g" "$template" | put "$R/etc/systemd/system/emotion-edge@.service" 0644
sed -e "s|/opt/emotion-edge|$PREFIX|g" -e 's|/etc/emotion-edge/%i\.toml|/etc/emotion-edge/config.toml|g' \
    -e 's|^StateDirectory=emotion-edge/%i$|StateDirectory=emotion-edge|' -e 's|^\(Description=.*\), camera %i$|\1|' \
    -e 's|emotion-edge@<name>|emotion-edge|g' -e '/^Environment=EMOTION_EDGE_INSTANCE=%i$/d' \
    -e '/^# Each instance is its own camera/d' "$template" | put "$R/etc/systemd/system/emotion-edge.service" 0644
grep -q '%i' "$R/etc/systemd/system/emotion-edge.service" 2>/dev/null && die "internal: %i left in the rendered emotion-edge.service"

if [[ $PLATFORM == jetson ]]; then
    # Argus (CSI) talks to nvargus-daemon over a socket and maps many /dev/nv* nodes that differ per JetPack.
    printf '[Service]\nDevicePolicy=auto\nSupplementaryGroups=video render\n' \
        | put "$R/etc/systemd/system/emotion-edge.service.d/jetson.conf" 0644
fi
[[ -z $ROOT ]] && run mkdir -p /var/lib/emotion-edge

# --- check the config, then start --------------------------------------------------------------
if ! ((DRY_RUN)); then
    cfg_copy=$(mktemp)
    cp "$R$ETC/config.toml" "$cfg_copy"
    if [[ $PLATFORM != generic && -n $ROOT ]]; then
        say "skipping the camera check inside --root (no $PLATFORM camera libraries here)"
    elif ! EMOTION_EDGE_MODELS="$R$PREFIX/models" "$R$VENV/bin/emotion-edge" check-config --config "$cfg_copy"; then
        rm -f "$cfg_copy"
        die "the config $ETC/config.toml does not check out (see above); fix it and re-run"
    fi
    rm -f "$cfg_copy"
fi
started=1
if [[ -z $ROOT ]] && [[ -d /run/systemd/system ]]; then
    run systemctl daemon-reload
    if ((WITH_BROKER)); then
        run systemctl enable --now mosquitto
        if ((BROKER_CHANGED)); then run systemctl restart mosquitto; fi
    fi
    run systemctl enable emotion-edge.service
    if ((NO_START)); then :; elif ((CHANGED)); then
        run systemctl restart emotion-edge.service || started=0
    else
        run systemctl start emotion-edge.service || started=0
    fi
elif [[ -z $ROOT ]]; then
    say "systemd is not running here: units installed but not started"
fi

sub_cmd="mosquitto_sub -h $MQTT_HOST -t 'emotion-edge/#' -v"
[[ -n $MQTT_USER ]] && sub_cmd+=" -u $MQTT_USER -P \"\$(sudo cat $CRED)\""
lan_line=""
if ((BROKER_LAN)); then
    lan_line="  LAN (TLS):  mosquitto_sub -h $(hostname -s 2>/dev/null || hostname) -p 8883 --cafile /etc/mosquitto/emotion-edge/ca.crt -t 'emotion-edge/#' -v -u $MQTT_USER -P ...  (copy ca.crt to the client)"
fi
cat <<EOF2
install.sh: done.
  logs:       journalctl -u emotion-edge -f
  status:     systemctl status emotion-edge
  config:     $ETC/config.toml (check: sudo -u emotion-edge $VENV/bin/emotion-edge check-config --config $ETC/config.toml)
  events:     $sub_cmd
${lan_line:+$lan_line
}  per camera: $ETC/<name>.toml + systemctl enable --now emotion-edge@<name>
EOF2
if ((!started)); then
    echo "install.sh: error: emotion-edge.service is installed but did not start. Its last log lines:" >&2
    journalctl -u emotion-edge.service -n 5 --no-pager -o cat >&2 || true
    echo "install.sh: fix the problem named above (usually [camera] in $ETC/config.toml), check it with" \
         "'sudo -u emotion-edge $VENV/bin/emotion-edge check-config --config $ETC/config.toml', then 'sudo systemctl restart emotion-edge'" >&2
    exit 1
fi
