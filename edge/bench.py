"""`emotion-edge bench`: FPS and per-stage latency of the real pipeline on this hardware.

Runs capture -> detect -> preprocess -> classify -> track -> publish (to a null publisher that still
serialises every payload) on a video file, a camera, or a synthetic clip with N faces, after a
warm-up; prints a table and writes JSON. `--models all` measures per-face classification latency of
every shipped model (int8 and float32, 1 and N threads). Compare a run with reference numbers with
`--compare tests/bench/reference/<device>.json`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import UserError

BENCH_SCHEMA = 1


class NullPublisher:
    """Serialises like the real publishers, sends nothing."""

    def __init__(self):
        self.bytes = 0
        self.seq = 0

    def start(self):
        pass

    def durable(self, kind, make_payload):
        self.seq += 1
        self.bytes += len(json.dumps(make_payload(self.seq)))

    def transient(self, kind, payload, retain=False):
        self.bytes += len(json.dumps(payload))

    def health(self):
        return {"publisher": "null"}

    def close(self, timeout_s=0):
        pass


class SyntheticSource:
    """Frames with `faces` copies of the public-domain astronaut's head, drifting; no file I/O."""

    name = "synthetic"

    def __init__(self, faces: int, width: int, height: int):
        from edge.assets import asset_path

        src = cv2.imread(str(asset_path("astronaut")), cv2.IMREAD_COLOR)
        side = max(48, min(width // 3, height // 2) - 10)
        self.head = cv2.resize(src[20:260, 110:350], (side, side), interpolation=cv2.INTER_AREA)
        self.faces, self.w, self.h, self.i = faces, width, height, 0

    def open(self):
        pass

    def read(self):
        side = self.head.shape[0]
        frame = np.full((self.h, self.w, 3), 80, np.uint8)
        slots = [(x, y) for y in (5, self.h // 2) for x in (5, self.w // 3 + 5, 2 * self.w // 3 + 5)]
        for k in range(self.faces):
            x, y = slots[k]
            dx = int(4 * np.sin(self.i / 10 + k))
            x = min(max(0, x + dx), self.w - side)
            y = min(y, self.h - side)
            frame[y : y + side, x : x + side] = self.head if k % 2 == 0 else cv2.flip(self.head, 1)
        self.i += 1
        return frame

    def close(self):
        pass


def _pct(vals, q):
    return round(float(np.percentile(np.asarray(vals), q)), 3) if vals else None


def run_pipeline(cfg, source, frames: int, warmup: int) -> dict:
    """Time the real Pipeline.process on `frames` frames read synchronously from `source`."""
    from edge.app import build_parts
    from edge.pipeline import Pipeline

    classifier, detector, _ = build_parts(cfg)

    class NoCapture:
        captured = dropped = reconnects = 0

    pipe = Pipeline(cfg, NoCapture(), detector, classifier, NullPublisher())
    source.open()
    capture_ms, faces = [], 0
    try:
        for _ in range(warmup):
            img = source.read()
            if img is None:
                raise UserError("the bench source ended during warm-up; use a longer clip or fewer --warmup frames")
            pipe.process(img, time.monotonic())
        pipe.stats = type(pipe.stats)(window=frames + 1)
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        n = 0
        while n < frames:
            tc = time.monotonic()
            img = source.read()
            if img is None:
                break
            capture_ms.append((time.monotonic() - tc) * 1000.0)
            faces += pipe.process(img, time.monotonic())
            n += 1
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        source.close()
    stages = {"capture": capture_ms, **{s: list(pipe.stats.samples[s]) for s in ("detect", "preprocess", "classify", "publish", "total")}}
    from edge.health import soc_health

    return {
        "frames": n, "seconds": round(wall, 3), "fps": round(n / wall, 2) if wall else 0.0,
        "faces_per_frame": round(faces / n, 3) if n else 0.0, "faces_per_second": round(faces / wall, 2) if wall else 0.0,
        "latency_ms": {s: {"p50": _pct(v, 50), "p95": _pct(v, 95), "p99": _pct(v, 99)} for s, v in stages.items()},
        "cpu_percent": round(100.0 * ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall, 1) if wall else 0.0,
        "peak_rss_mb": round(ru1.ru_maxrss / 1024.0, 1),
        "model": {"name": classifier.name, "variant": classifier.variant, "threads": cfg.classifier.threads},
        "detector": detector.name, **soc_health(),
    }


def models_table(models_root: Path | None, threads: list[int], runs: int = 300) -> list[dict]:
    """Per-face classification latency (median, p95) and file size of every shipped model."""
    from edge.classify.tflite import TFLiteClassifier
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    manifest = Manifest(models_root or models_dir())
    rows = []
    for name in manifest.names:
        entry = manifest.entry(name)
        for variant in entry.data["variants"]:
            for t in threads:
                clf = TFLiteClassifier(entry, variant, t)
                face = np.random.default_rng(0).integers(0, 256, clf.spec.input_shape, dtype=np.uint8)
                lat = clf.latency_ms(face, runs, warmup=20)
                rows.append({"model": name, "variant": variant, "threads": t, "median_ms": lat["median"],
                             "p95_ms": lat["p95"], "size_kb": round(entry.variant(variant)["size_bytes"] / 1024, 1)})
    return rows


def compare_fer(frames: list[np.ndarray]) -> dict | None:
    """The `fer` package's pipeline (Haar cascade + mini-Xception) on the same frames, when installed."""
    try:
        from fer import FER
    except ImportError:
        return None
    detector = FER(mtcnn=False)
    detector.detect_emotions(frames[0])
    t0 = time.monotonic()
    faces = sum(len(detector.detect_emotions(f)) for f in frames)
    wall = time.monotonic() - t0
    return {"frames": len(frames), "fps": round(len(frames) / wall, 2), "faces_per_frame": round(faces / len(frames), 3)}


def machine() -> dict:
    return {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform()}


def compare_reference(result: dict, ref_path: Path) -> list[str]:
    """Lines comparing this run's headline numbers with a reference file's."""
    ref = json.loads(ref_path.read_text())
    lines = [f"reference {ref_path.name} ({ref.get('label', '')}):"]
    if not ref.get("measured") or not ref.get("pipeline"):
        return lines + ["  no measured numbers in this reference yet"]
    for key in ("fps", "faces_per_second"):
        a, b = result["pipeline"].get(key), ref["pipeline"].get(key)
        if a is not None and b:
            lines.append(f"  {key:<18} this run {a:>8.2f}   reference {b:>8.2f}   ratio {a / b:5.2f}")
    return lines


def configure(base_cfg, model: str | None, variant: str, detector: str | None, threads: int | None):
    c = base_cfg.classifier
    cfg = replace(base_cfg, classifier=replace(c, model=model or c.model, variant=variant, threads=threads or c.threads))
    if detector:
        cfg = replace(cfg, detector=replace(cfg.detector, type=detector))
    if threads:
        cfg = replace(cfg, detector=replace(cfg.detector, threads=threads))
    return cfg
