"""The versioned MQTT payloads (documented in the README). Every payload carries schema_version."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

SCHEMA_VERSION = 1


def utc_now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _durable_header(device_id: str, camera: str, seq: int) -> dict[str, Any]:
    """The fields every durable payload (event, summary) starts with: a unique id and the stream's seq."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": str(uuid.uuid4()),
        "seq": seq,
        "timestamp": utc_now_iso(),
        "device_id": device_id,
        "camera": camera,
    }


def event_payload(
    ev, *, device_id: str, camera: str, seq: int, model: str, model_version: str, frame_w: int, frame_h: int
) -> dict[str, Any]:
    return {
        **_durable_header(device_id, camera, seq),
        "type": ev.type,
        "event_type": ev.type,  # Home Assistant's MQTT event entity reads this key
        "track_id": ev.track_id,
        "emotion": ev.emotion,
        "previous_emotion": ev.previous,
        "confidence": round(ev.confidence, 4),
        "probabilities": ev.probabilities,
        "box": [round(v, 4) for v in ev.box.normalised(frame_w, frame_h)],
        "duration_s": round(ev.duration_s, 3),
        "model": {"name": model, "version": model_version},
    }


def status_payload(state: str, device_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "state": state,
        "device_id": device_id,
        "timestamp": utc_now_iso(),
        **extra,
    }


def summary_payload(
    *,
    device_id: str,
    camera: str,
    seq: int,
    interval_s: float,
    counts: dict[str, int],
    tracks: dict[str, int],
    faces_seen: int,
) -> dict[str, Any]:
    return {
        **_durable_header(device_id, camera, seq),
        "interval_s": interval_s,
        "counts": counts,
        "tracks": tracks,
        "faces_seen": faces_seen,
    }
