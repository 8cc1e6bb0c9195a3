"""Strict TOML configuration: every key has a default and a description; unknown keys are errors.

`deploy/config.example.toml` is generated from these classes (`emotion-edge example-config`), so the
documentation cannot drift from the code. Secrets never live here: the MQTT password comes from a
file or a systemd credential (`password_file`, `$CREDENTIALS_DIRECTORY/mqtt-password`).
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
import sys
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from edge.core.errors import UserError

log = logging.getLogger(__name__)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib


def opt(
    default: Any,
    doc: str,
    choices: tuple | None = None,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
):
    """A config field: default, one-line description, and the allowed choices or numeric range."""
    return field(default=default, metadata={"doc": doc, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt})


def sub(cls):
    return field(default_factory=cls, metadata={"doc": cls.__doc__})


CAMERA_TYPES = ("demo", "file", "images", "opencv", "gstreamer", "stream", "picamera2")


@dataclass
class CameraConfig:
    """Where frames come from."""

    type: str = opt(
        "demo",
        "demo (built-in clip), file (video), images (folder), opencv (USB/V4L2), "
        "gstreamer (pipeline string, e.g. Jetson CSI), stream (RTSP/HTTP URL), picamera2 (Pi camera)",
        CAMERA_TYPES,
    )
    name: str = opt("cam0", "camera name published in every event")
    path: str = opt("", "file: video path; images: folder; opencv: device path such as /dev/video0")
    index: int = opt(0, "opencv: device index when path is empty", ge=0, le=255)
    url: str = opt("", "stream: rtsp:// or http(s):// URL")
    pipeline: str = opt("", "gstreamer: pipeline ending in appsink (needs OpenCV built with GStreamer)")
    width: int = opt(640, "requested frame width (opencv, picamera2)", ge=16, le=8192)
    height: int = opt(480, "requested frame height (opencv, picamera2)", ge=16, le=8192)
    fps: float = opt(
        30.0, "requested frame rate; file/images/demo sources are paced to it when realtime = true", gt=0, le=240
    )
    loop: bool = opt(True, "file/images/demo: start again at the end")
    realtime: bool = opt(True, "file/images/demo: pace frames like a camera (false: as fast as they decode)")
    reconnect_max_s: float = opt(30.0, "longest wait between attempts to reopen a lost camera or stream", gt=0, le=3600)
    frame_timeout_s: float = opt(
        20.0,
        "no frame for this long: the camera is reopened (a hung read is abandoned); "
        "if reopening hangs too, the systemd watchdog restarts the service",
        ge=2,
        le=600,
    )


@dataclass
class DetectorConfig:
    """Face detection (BlazeFace)."""

    type: str = opt(
        "blazeface-short",
        "blazeface-short (faces within ~2 m) or blazeface-full (surveillance distances)",
        ("blazeface-short", "blazeface-full"),
    )
    score_threshold: float = opt(0.5, "minimum detection score", gt=0, lt=1)
    iou_threshold: float = opt(0.3, "boxes overlapping more than this are merged (weighted NMS)", gt=0, le=1)
    min_face_px: int = opt(20, "ignore faces smaller than this (pixels, shorter side)", ge=1, le=4096)
    max_faces: int = opt(5, "at most this many faces per frame (highest scores first)", ge=1, le=100)
    threads: int = opt(1, "interpreter threads", ge=1, le=64)
    pad: float = opt(
        0.0,
        "close-ups: also detect on the frame inside a black border of this fraction of its longer side (a second "
        "pass, for faces that fill the frame or are cut by its edges; 0 = off, 0.25 is what analyze uses)",
        ge=0,
        le=1,
    )


@dataclass
class ClassifierConfig:
    """Emotion classification."""

    model: str = opt(
        "",
        "model name from models/manifest.json, e.g. multiclass4-resnet (default: the manifest's "
        "default_model, the production multiclass4-resnet); list them with 'emotion-edge models'",
    )
    variant: str = opt("int8", "int8 (fast on Arm) or float32", ("int8", "float32"))
    threads: int = opt(1, "interpreter threads", ge=1, le=64)
    models_dir: str = opt("", "folder with manifest.json (default: $EMOTION_EDGE_MODELS or the package's models/)")
    classify_hz: float = opt(
        5.0,
        "classify each face at most this often per second; a new face at once (0: on every detection)",
        ge=0,
        le=1000,
    )
    max_classify_hz: float = opt(
        10.0,
        "at most this many classifications per second over all faces, those classified longest ago first; "
        "a new face is never delayed (0: no limit)",
        ge=0,
        le=10000,
    )
    batch: bool = opt(True, "classify the faces of a frame in one interpreter call (false: one call per face)")


@dataclass
class TrackingConfig:
    """Track faces across frames and emit events only on appear / change / leave."""

    iou_threshold: float = opt(
        0.3, "a detection continues a track when their boxes overlap at least this much", gt=0, le=1
    )
    max_missing_s: float = opt(1.0, "a track that is not seen for this long has left", gt=0, le=3600)
    smoothing_s: float = opt(
        0.1,
        "time constant (s) of the moving average of each face's probabilities (0: none); by time, not frames",
        ge=0,
        le=60,
    )
    min_confidence: float = opt(0.5, "smoothed probability an emotion needs before it is reported", ge=0, le=1)
    min_duration_s: float = opt(
        0.5, "an emotion must hold this long before a change is reported (hysteresis)", ge=0, le=3600
    )


@dataclass
class GatingConfig:
    """Spend CPU only on what changed: motion decides when the face detector runs (see edge/motion.py)."""

    enabled: bool = opt(True, "motion gating (false: run the detector on every frame)")
    idle_detect_interval_s: float = opt(
        1.0, "with no face tracked and nothing moving, run the detector this often (s)", gt=0, le=60
    )
    detect_hz: float = opt(
        5.0,
        "while faces are tracked, run the detector this often per second (and when motion appears elsewhere)",
        gt=0,
        le=1000,
    )
    max_detect_hz: float = opt(
        10.0,
        "never run the detector more often than this, even while things keep moving (a fan, a screen)",
        gt=0,
        le=1000,
    )
    motion_threshold: int = opt(20, "grey-level change (of 255) that counts a pixel as moving", ge=1, le=255)
    motion_min_fraction: float = opt(0.002, "fraction of the picture that must move to count as motion", gt=0, le=1)
    motion_width: int = opt(160, "width (px) of the small grey copy motion is measured on", ge=16, le=1920)


@dataclass
class PreviewConfig:
    """Opt-in local live view (HTTP): the annotated camera picture and live stats. Images leave the process only
    here, and only to whoever can reach this address."""

    enabled: bool = opt(False, "serve the live view (off by default: no image ever leaves the device)")
    listen: str = opt(
        "127.0.0.1:8080",
        "HOST:PORT to serve on; anything but loopback needs password_file (check-config refuses it otherwise)",
    )
    username: str = opt("emotion-edge", "HTTP basic-auth user name (with password_file)")
    password_file: str = opt(
        "", "file holding the HTTP basic-auth password (or the systemd credential 'preview-password')"
    )
    max_fps: float = opt(10.0, "at most this many annotated frames a second are encoded for viewers", gt=0, le=120)
    jpeg_quality: int = opt(75, "JPEG quality of the stream", ge=10, le=100)


@dataclass
class TLSConfig:
    """TLS to the broker."""

    enabled: bool = opt(False, "use TLS")
    ca_file: str = opt("", "CA certificate file (empty: the system's CAs)")
    cert_file: str = opt("", "client certificate (mutual TLS)")
    key_file: str = opt("", "client key (mutual TLS)")
    insecure: bool = opt(False, "skip hostname verification (testing only)")


@dataclass
class MQTTConfig:
    """The MQTT broker and topics."""

    host: str = opt("localhost", "broker host")
    port: int = opt(1883, "broker port (8883 is usual with TLS)", ge=1, le=65535)
    client_id: str = opt("", "client id (default: emotion-edge-<device_id>)")
    username: str = opt("", "username (empty: anonymous)")
    password_file: str = opt("", "file holding the password (default: $CREDENTIALS_DIRECTORY/mqtt-password when set)")
    keepalive_s: int = opt(30, "keepalive interval", ge=5, le=65535)
    topic_prefix: str = opt("emotion-edge", "topics are <topic_prefix>/<device_id>/{events,status,stats,summary}")
    connect_timeout_s: float = opt(
        10.0, "how long start-up waits for the first CONNACK before running offline", ge=0, le=300
    )
    reconnect_min_s: int = opt(1, "first reconnect delay (paho backoff doubles it)", ge=1, le=3600)
    reconnect_max_s: int = opt(60, "longest reconnect delay", ge=1, le=86400)
    outbox_path: str = opt(
        "",
        "SQLite outbox for events while the broker is away "
        "(default: $STATE_DIRECTORY/outbox.sqlite or ~/.local/state/emotion-edge/outbox.sqlite)",
    )
    outbox_max_events: int = opt(
        100000, "outbox bound; when full the oldest events are dropped and counted", ge=1, le=10_000_000
    )
    tls: TLSConfig = sub(TLSConfig)


@dataclass
class HomeAssistantConfig:
    """Home Assistant MQTT discovery."""

    enabled: bool = opt(False, "publish discovery configs for a dominant-emotion sensor and an event entity")
    discovery_prefix: str = opt("homeassistant", "Home Assistant's discovery prefix")


@dataclass
class Config:
    """emotion-edge daemon configuration."""

    device_id: str = opt(
        "",
        "device id in topics, payloads, MQTT client id and the Home Assistant device: one per camera "
        "(default: the host name; '<host>-<name>' under emotion-edge@<name>.service)",
    )
    publisher: str = opt("mqtt", "mqtt, or stdout (JSON lines, no broker)", ("mqtt", "stdout"))
    aggregate_only: bool = opt(False, "privacy mode: publish no per-face events, only periodic summaries")
    summary_interval_s: float = opt(
        0.0, "publish counts per emotion every N seconds (0: off; 60 when aggregate_only)", ge=0, le=86400
    )
    stats_interval_s: float = opt(10.0, "publish pipeline statistics every N seconds", gt=0, le=86400)
    publish_images: bool = opt(False, "reserved: images never leave the device in this version; true is refused")
    camera: CameraConfig = sub(CameraConfig)
    detector: DetectorConfig = sub(DetectorConfig)
    classifier: ClassifierConfig = sub(ClassifierConfig)
    tracking: TrackingConfig = sub(TrackingConfig)
    gating: GatingConfig = sub(GatingConfig)
    mqtt: MQTTConfig = sub(MQTTConfig)
    homeassistant: HomeAssistantConfig = sub(HomeAssistantConfig)
    preview: PreviewConfig = sub(PreviewConfig)

    def __post_init__(self) -> None:
        if not self.device_id:
            self.device_id = socket.gethostname().split(".")[0] or "edge"
        if self.aggregate_only and not self.summary_interval_s:
            self.summary_interval_s = 60.0


def _type_ok(value: Any, hint: Any) -> bool:
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{where}{close[0]}'?)" if close else ""
            raise UserError(f"unknown config key '{where}{key}'{hint}; fix: remove it — valid keys: {', '.join(known)}")
        hint_t = hints[key]
        if is_dataclass(hint_t):
            if not isinstance(value, dict):
                raise UserError(f"config key '{where}{key}' must be a [{where}{key}] table")
            kwargs[key] = _build(hint_t, value, f"{where}{key}.")
            continue
        if not _type_ok(value, hint_t):
            raise UserError(
                f"config key '{where}{key}' must be {hint_t.__name__}, got {type(value).__name__} {value!r}"
            )
        meta = known[key].metadata
        choices = meta.get("choices")
        if choices and value not in choices:
            raise UserError(f"config key '{where}{key}' = {value!r} is not one of {', '.join(choices)}")
        _check_range(f"{where}{key}", value, meta)
        kwargs[key] = float(value) if hint_t is float else value
    return cls(**kwargs)


def _range_text(meta: Mapping[str, Any]) -> str:
    parts = [
        f"{op} {meta[k]:g}"
        for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
        if meta.get(k) is not None
    ]
    return " and ".join(parts)


def _check_range(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Numbers must lie in the field's declared range (NaN never does)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    bad = (
        value != value
        or (ge is not None and value < ge)
        or (gt is not None and value <= gt)
        or (le is not None and value > le)
        or (lt is not None and value >= lt)
    )
    if bad:
        raise UserError(f"config key '{key}' = {value!r} is out of range; fix: use a value {_range_text(meta)}")


# MQTT topic levels: wildcards, NUL and a leading '$' (broker-internal topics) never name a topic we publish.
_TOPIC_BAD = ("+", "#", "\0")


def _check_topic_part(key: str, value: str, allow_slash: bool) -> None:
    bad = [c for c in _TOPIC_BAD if c in value] + (["/"] if not allow_slash and "/" in value else [])
    if (
        not value.strip()
        or bad
        or value.startswith("$")
        or (allow_slash and ("//" in value or value.strip("/") != value))
    ):
        shown = ", ".join(repr(c) for c in bad) or "an empty level, a leading '$' or a leading/trailing '/'"
        raise UserError(
            f"config key '{key}' = {value!r} cannot be used in an MQTT topic ({shown}); "
            "fix: use letters, digits, '-' and '_'" + (" (levels separated by '/')" if allow_slash else "")
        )


def load_config(path: str | Path | None) -> Config:
    """Parse and check a TOML file (None: all defaults). Errors are one line naming the key and the fix."""
    if path is None:
        cfg = Config()
    else:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file {p} not found; fix: create it from deploy/config.example.toml") from None
        except IsADirectoryError:
            raise UserError(f"config path {p} is a directory; fix: pass the TOML file itself") from None
        except PermissionError:
            raise UserError(
                f"config file {p} cannot be read by this user; fix: chmod 0644 it (it holds no secrets)"
            ) from None
        except UnicodeDecodeError as exc:
            raise UserError(f"config file {p} is not UTF-8 text (byte {exc.start}); fix: save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"config file {p} is not valid TOML: {exc}") from None
        cfg = _build(Config, data, "")
        _instance_defaults(cfg, data)
    validate(cfg)
    return cfg


def _instance_defaults(cfg: Config, data: dict) -> None:
    """Under emotion-edge@<name>.service ($EMOTION_EDGE_INSTANCE) a camera gets its own identity by default:
    device_id '<host>-<name>' (its topics, MQTT client id, HA device) and camera name '<name>'."""
    instance = os.environ.get("EMOTION_EDGE_INSTANCE", "").strip()
    if not instance:
        return
    if "device_id" not in data:
        cfg.device_id = f"{socket.gethostname().split('.')[0] or 'edge'}-{instance}"
    if "name" not in (data.get("camera") or {}):
        cfg.camera.name = instance


def validate(cfg: Config) -> None:
    if cfg.publish_images:
        raise UserError(
            "publish_images = true is not supported: images and face crops never leave the device; fix: remove it"
        )
    c = cfg.camera
    need = {
        "file": ("path", c.path),
        "images": ("path", c.path),
        "stream": ("url", c.url),
        "gstreamer": ("pipeline", c.pipeline),
    }
    if c.type in need and not need[c.type][1]:
        raise UserError(f"camera.type = '{c.type}' needs camera.{need[c.type][0]}; fix: set it in [camera]")
    if c.type in ("file", "images") and not Path(c.path).exists():
        raise UserError(f"camera.path {c.path} does not exist; fix: point it at a video file or image folder")
    g, k = cfg.gating, cfg.classifier
    if g.enabled and g.detect_hz > g.max_detect_hz:
        raise UserError(
            f"gating.detect_hz ({g.detect_hz:g}) is larger than gating.max_detect_hz ({g.max_detect_hz:g}); "
            "fix: raise max_detect_hz or lower detect_hz"
        )
    if g.enabled and k.classify_hz > g.detect_hz:
        raise UserError(
            f"classifier.classify_hz ({k.classify_hz:g}) is larger than gating.detect_hz ({g.detect_hz:g}), but faces "
            "are classified only on frames the detector ran on; fix: lower classify_hz or raise detect_hz"
        )
    _check_preview(cfg.preview)
    m = cfg.mqtt
    if not m.host.strip():
        raise UserError("config key 'mqtt.host' is empty; fix: set the broker's host name or address")
    if m.reconnect_min_s > m.reconnect_max_s:
        raise UserError(
            f"mqtt.reconnect_min_s ({m.reconnect_min_s}) is larger than mqtt.reconnect_max_s ({m.reconnect_max_s}); "
            "fix: make the first delay the smaller"
        )
    _check_topic_part("device_id", cfg.device_id, allow_slash=False)
    _check_topic_part("camera.name", c.name, allow_slash=False)
    _check_topic_part("mqtt.topic_prefix", m.topic_prefix, allow_slash=True)
    _check_topic_part("homeassistant.discovery_prefix", cfg.homeassistant.discovery_prefix, allow_slash=True)
    if m.client_id and any(ch in m.client_id for ch in _TOPIC_BAD):
        raise UserError(
            f"config key 'mqtt.client_id' = {m.client_id!r} contains '+', '#' or NUL; fix: use letters, digits, '-'"
        )
    pw = m.password_file
    if pw and not Path(pw).is_file():
        raise UserError(f"mqtt.password_file {pw} not found; fix: create it (mode 0600) or use a systemd credential")
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(cfg.mqtt.tls, key)
        if value and not Path(value).is_file():
            raise UserError(f"mqtt.tls.{key} {value} not found; fix: correct the path")
    if m.tls.enabled:
        _check_tls(m.tls)


def _check_tls(tls: TLSConfig) -> None:
    """Load the CA and client certificate the way the connection will, so a bad file is one line at start-up."""
    import ssl

    ctx = ssl.create_default_context()
    try:
        if tls.ca_file:
            ctx.load_verify_locations(cafile=tls.ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UserError(
            f"mqtt.tls.ca_file {tls.ca_file} is not a usable PEM CA certificate ({exc}); fix: point it at the "
            "broker's CA certificate"
        ) from None
    if bool(tls.cert_file) != bool(tls.key_file):
        raise UserError("mqtt.tls.cert_file and mqtt.tls.key_file go together; fix: set both (mutual TLS) or neither")
    if tls.cert_file:
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UserError(
                f"mqtt.tls.cert_file/key_file cannot be used ({exc}); fix: a PEM certificate and its own "
                "unencrypted private key"
            ) from None


def read_secret(path: Path, what: str) -> str:
    """One line of UTF-8 text from a secret file, or a one-line UserError naming the fix."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"{what} {path} cannot be read ({exc.strerror}); fix: make it readable by the service user "
            "(or use the systemd credential 'mqtt-password')"
        ) from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text; fix: write the password as one line of text") from None
    if not text or "\0" in text or "\n" in text:
        raise UserError(f"{what} {path} must hold the password on one non-empty line; fix: rewrite it")
    return text


def _check_preview(p: PreviewConfig) -> None:
    """The live view shows camera pictures: loopback, or a password. Refused before start-up otherwise."""
    if not p.enabled:
        return
    from edge.preview import is_loopback, parse_listen

    host, _ = parse_listen(p.listen)
    if not is_loopback(host) and preview_password(p) is None:
        raise UserError(
            f"preview.listen = {p.listen!r} is reachable from other machines but no password is set; fix: set "
            "preview.password_file (or the systemd credential 'preview-password'), or listen on 127.0.0.1"
        )


def password(password_file: str, key: str, credential: str) -> str | None:
    """A password from the configured file (`key` names it in messages), else the systemd credential
    `credential`, else None. A file others can read is warned about."""
    if password_file:
        path = Path(password_file)
        try:
            if path.stat().st_mode & 0o077:
                log.warning("%s %s is readable by other users; fix: chmod 0600 %s", key, path, path)
        except OSError:
            pass
        return read_secret(path, key)
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / credential).is_file():
        return read_secret(Path(cred_dir) / credential, "systemd credential")
    return None


def preview_password(p: PreviewConfig) -> str | None:
    return password(p.password_file, "preview.password_file", "preview-password")


def mqtt_password(cfg: MQTTConfig) -> str | None:
    """Password from password_file, else the systemd credential, else None (anonymous)."""
    return password(cfg.password_file, "mqtt.password_file", "mqtt-password")


def example_toml() -> str:
    """The documented example config, generated from the dataclasses (all defaults)."""
    lines = [
        "# emotion-edge configuration. Every key is optional; shown values are the defaults.",
        "# Unknown keys are errors. Check with: emotion-edge check-config --config FILE",
        "",
    ]

    def render(cls, prefix: str) -> None:
        tables = []
        for f in fields(cls):
            if is_dataclass(f.type if not isinstance(f.type, str) else typing.get_type_hints(cls)[f.name]):
                tables.append(f)
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
            lines.append(f"# {f.metadata['doc']}")
            if f.name == "device_id":
                lines.append('#device_id = "cam-entrance"')
                continue
            lines.append(f"{f.name} = {toml_value(default)}")
        for f in tables:
            sub_cls = typing.get_type_hints(cls)[f.name]
            doc = " ".join((sub_cls.__doc__ or "").split())  # one comment line, however the docstring wraps
            lines.extend(["", f"[{prefix}{f.name}]", f"# {doc}"])
            render(sub_cls, f"{prefix}{f.name}.")

    render(Config, "")
    return "\n".join(lines) + "\n"


def toml_value(v: Any) -> str:
    """A Python scalar as a TOML value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)
