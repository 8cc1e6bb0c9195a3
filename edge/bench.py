"""`emotion-edge bench`: FPS and per-stage latency of the real pipeline on this hardware.

Runs capture -> detect -> preprocess -> classify -> track -> publish (to a null publisher that still
serialises every payload) on a video file, a camera, or a synthetic clip with N faces, after a
warm-up; prints a table and writes JSON. `--all-models` measures per-face classification latency of
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
from edge.stats import latency_summary

BENCH_SCHEMA = 1


class SyntheticSource:
    """Frames with `faces` copies of the public-domain astronaut's head, drifting; no file I/O."""

    name = "synthetic"

    def __init__(self, faces: int, width: int, height: int):
        from edge.assets import demo_face_image

        src = demo_face_image()
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


def run_pipeline(cfg, source, frames: int, warmup: int) -> dict:
    """Time the real Pipeline.process on `frames` frames read synchronously from `source`."""
    from edge.app import build_parts, configure_process
    from edge.bench_rate import ungated
    from edge.camera.capture import LatestFrameCapture
    from edge.pipeline import Pipeline
    from edge.publish.null import NullPublisher

    cfg = ungated(cfg)  # throughput is the worst case: every frame detected, every face classified
    configure_process()  # as the daemon runs
    classifier, detector, _ = build_parts(cfg)
    # The real capture object, never started: frames are read here synchronously so that every frame is timed.
    pipe = Pipeline(cfg, LatestFrameCapture(source), detector, classifier, NullPublisher())
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
    stages = {"capture": capture_ms, **{s: list(v) for s, v in pipe.stats.samples.items() if s != "capture_age"}}
    from edge.health import soc_health

    return {
        "frames": n,
        "seconds": round(wall, 3),
        "fps": round(n / wall, 2) if wall else 0.0,
        "faces_per_frame": round(faces / n, 3) if n else 0.0,
        "faces_per_second": round(faces / wall, 2) if wall else 0.0,
        "latency_ms": {s: latency_summary(v) for s, v in stages.items()},
        "cpu_percent": round(100.0 * ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall, 1)
        if wall
        else 0.0,
        "peak_rss_mb": round(ru1.ru_maxrss / 1024.0, 1),
        "model": {"name": classifier.name, "variant": classifier.variant, "threads": cfg.classifier.threads},
        "detector": detector.name,
        **soc_health(),
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
                rows.append(
                    {
                        "model": name,
                        "variant": variant,
                        "threads": t,
                        "median_ms": lat["p50"],
                        "p95_ms": lat["p95"],
                        "size_kb": round(entry.variant(variant)["size_bytes"] / 1024, 1),
                    }
                )
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
    return {
        "frames": len(frames),
        "fps": round(len(frames) / wall, 2),
        "faces_per_frame": round(faces / len(frames), 3),
    }


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), with "int8 dot product" where it has one (x86 VNNI, Arm dotprod):
    int8 inference is several times faster there, so per-face latencies mean little without it."""
    name, flags = "", set()  # platform.processor() is "x86_64" on some distributions: the fallback only
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and not name:
                name = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    dot = bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})
    name = name or platform.processor() or "unknown CPU"
    return f"{name}{', int8 dot product' if dot else ''}"


def machine() -> dict:
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


# (section, path, higher_is_better) of the numbers --compare checks against a reference.
COMPARED = (
    ("pipeline", ("fps",), True),
    ("pipeline", ("faces_per_second",), True),
    ("pipeline", ("latency_ms", "total", "p50"), False),
    ("pipeline", ("latency_ms", "detect", "p50"), False),
    ("pipeline", ("latency_ms", "classify", "p50"), False),
)


def _dig(d: dict | None, path: tuple[str, ...]):
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _camera_rate_compared(result: dict, ref: dict) -> list[tuple[str, tuple[str, ...], bool]]:
    """CPU per camera second of every scene both runs measured at camera rate (lower is better)."""
    scenes = set(result.get("camera_rate") or {}) & set(ref.get("camera_rate") or {})
    return [("camera_rate", (scene, "gated", "cpu_percent"), False) for scene in sorted(scenes)]


def compare_reference(result: dict, ref_path: Path, tolerance: float) -> tuple[list[str], int]:
    """Lines comparing this run with a reference file, and how many numbers are worse than the reference by more
    than `tolerance` (a fraction: 0.2 allows 20% fewer FPS or 20% more latency), like pycoral's reference checks."""
    try:
        ref = json.loads(ref_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the reference {ref_path} ({exc}); fix: name a JSON written by --json") from None
    lines = [f"reference {ref_path.name} ({ref.get('label', '')}), tolerance {tolerance:.0%}:"]
    worse = compared = 0
    for section, path, higher in (*COMPARED, *_camera_rate_compared(result, ref)):
        a, b = _dig(result.get(section), path), _dig(ref.get(section), path)
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b <= 0:
            continue
        compared += 1
        ratio = a / b
        bad = ratio < 1 - tolerance if higher else ratio > 1 + tolerance
        worse += bad
        name = "/".join((section, *path))
        lines.append(
            f"  {name:<42} this run {a:>9.3f}   reference {b:>9.3f}   ratio {ratio:5.2f}  {'WORSE' if bad else 'ok'}"
        )
    if not compared:
        lines.append("  nothing comparable: the reference holds no number this run measured")
    return lines, worse


def configure(base_cfg, model: str | None, variant: str, detector: str | None, threads: int | None):
    c = base_cfg.classifier
    cfg = replace(
        base_cfg, classifier=replace(c, model=model or c.model, variant=variant, threads=threads or c.threads)
    )
    if detector:
        cfg = replace(cfg, detector=replace(cfg.detector, type=detector))
    if threads:
        cfg = replace(cfg, detector=replace(cfg.detector, threads=threads))
    return cfg
