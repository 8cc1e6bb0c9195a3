"""`emotion-edge bench --camera-rate`: what the daemon costs while it watches a camera, per scene.

Throughput (`bench`) says how fast frames *could* go; a board owner pays for the CPU the daemon burns at
the camera's own rate, around the clock, mostly at an empty scene. This runs the real frame loop
(Pipeline.run with the real LatestFrameCapture thread and a null publisher that still serialises every
payload) on a source paced at --fps, for each scene, twice: as configured (motion gating, per-track
classification rate, batching) and ungated (detector and classifier on every frame, one face per call,
i.e. the frame loop before gating existed). It reports CPU % of one core (process CPU time per wall
second, capture thread included), detector runs and classifications per second, events, and per-stage
times, so the two can be compared in the same run on the same machine.
"""

from __future__ import annotations

import resource
import threading
import time
from dataclasses import replace

import cv2
import numpy as np

from edge.camera.pacing import Pacer
from edge.core.errors import UserError
from edge.stats import latency_summary

SCENES = (("empty", 0), ("1 face", 1), ("3 faces", 3), ("5 faces", 5), ("demo clip", -1))


class LoopedFrames:
    """A camera stand-in: precomputed frames served in a ping-pong loop at `fps` (no decoding cost, so the
    CPU measured is the daemon's). Frames carry mild sensor noise, as a real camera's do."""

    def __init__(self, frames: list[np.ndarray], fps: float, name: str = "paced"):
        self.frames = frames + frames[-2:0:-1]  # forward then back: no jump at the loop point
        self.pacer = Pacer(fps, True)
        self.name = name
        self.i = 0

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        self.pacer.wait()
        frame = self.frames[self.i % len(self.frames)]
        self.i += 1
        return frame

    def close(self) -> None:
        pass


def scene_frames(faces: int, width: int = 640, height: int = 480, n: int = 45) -> list[np.ndarray]:
    """`faces` copies of the public-domain astronaut's head drifting slowly over a still background."""
    from edge.assets import demo_face_image

    rng = np.random.default_rng(7)
    base = np.full((height, width, 3), 90, np.uint8)
    base[: height // 3] = (120, 110, 100)  # a wall and a floor
    out = []
    side = min(width // 3, height // 2) - 20
    head = cv2.resize(demo_face_image()[20:260, 110:350], (side, side), interpolation=cv2.INTER_AREA)
    slots = [(x, y) for y in (10, height // 2 + 5) for x in (10, width // 3 + 10, 2 * width // 3 + 10)]
    for i in range(n):
        frame = base.copy()
        for k in range(faces):
            x, y = slots[k]
            dx = int(round(6 * np.sin(2 * np.pi * i / n + k)))
            x = min(max(0, x + dx), width - side)
            frame[y : y + side, x : x + side] = head if k % 2 == 0 else head[:, ::-1]
        noise = rng.integers(-3, 4, frame.shape, dtype=np.int16)
        out.append(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def demo_frames(n: int = 360) -> list[np.ndarray]:
    """The first `n` frames of the built-in demo clip (one to three faces entering and drifting)."""
    from edge.camera.demo import demo_clip_path

    cap = cv2.VideoCapture(str(demo_clip_path()))
    frames: list[np.ndarray] = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise UserError("the demo clip cannot be read; fix: run 'emotion-edge fetch --force'")
    return frames


def ungated(cfg):
    """The same config with every frame detected and every face classified, one per call."""
    return replace(
        cfg,
        gating=replace(cfg.gating, enabled=False),
        classifier=replace(cfg.classifier, classify_hz=0.0, max_classify_hz=0.0, batch=False),
    )


def measure(
    cfg, parts, frames: list[np.ndarray], fps: float, seconds: float, warmup_s: float, viewer: bool = False
) -> dict:
    """The daemon's frame loop on `frames` paced at `fps`: CPU, rates and stage times after a warm-up. viewer: the
    live preview on a free loopback port with one client reading its MJPEG stream all along (in this process,
    so its CPU counts)."""
    from edge.camera.capture import LatestFrameCapture
    from edge.health import Notifier
    from edge.pipeline import Pipeline
    from edge.preview import Preview
    from edge.publish.null import NullPublisher

    classifier, detector = parts
    capture = LatestFrameCapture(LoopedFrames(frames, fps))
    publisher = NullPublisher()
    preview = (
        Preview("127.0.0.1:0", max_fps=cfg.preview.max_fps, quality=cfg.preview.jpeg_quality).start()
        if viewer
        else None
    )
    pipe = Pipeline(cfg, capture, detector, classifier, publisher, Notifier(), preview)
    stop = threading.Event()
    if preview is not None:
        threading.Thread(target=_watch, args=(preview.port, stop), daemon=True).start()
    capture.start()
    loop = threading.Thread(target=pipe.run, args=(stop,), daemon=True)
    loop.start()
    try:
        time.sleep(warmup_s)
        pipe.stats.reset_samples()
        c0 = _counters(pipe, publisher)
        ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(seconds)
        ru1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        c1 = _counters(pipe, publisher)
        samples = {s: list(v) for s, v in pipe.stats.samples.items() if v and s != "capture_age"}
    finally:
        stop.set()
        loop.join(timeout=10)
        capture.stop()
        if preview is not None:
            preview.close()
    wall = t1 - t0
    d = {k: c1[k] - c0[k] for k in c0}
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "seconds": round(wall, 2),
        "cpu_percent": round(100.0 * cpu / wall, 2),
        "processed_fps": round(d["frames"] / wall, 2),
        "detector_runs_per_s": round(d["detector_runs"] / wall, 2),
        "classifications_per_s": round(d["classifications"] / wall, 2),
        "faces_per_frame": round(d["faces"] / d["frames"], 2) if d["frames"] else 0.0,
        "events": d["events"],
        "latency_ms": {s: latency_summary(v) for s, v in samples.items()},
    }


def _watch(port: int, stop: threading.Event) -> None:
    """A viewer: reads the MJPEG stream as fast as it comes."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=10) as r:
        while not stop.is_set() and r.read(65536):
            pass


def _counters(pipe, publisher) -> dict[str, int]:
    st = pipe.stats
    return {
        "frames": st.frames,
        "faces": st.faces,
        "detector_runs": st.detector_runs,
        "classifications": st.classifications,
        "events": publisher.published.get("events", 0),
    }


def knobs(cfg) -> dict:
    """The settings the gated runs used (recorded with the numbers)."""
    from dataclasses import asdict

    return {
        "gating": asdict(cfg.gating),
        "classify_hz": cfg.classifier.classify_hz,
        "batch": cfg.classifier.batch,
        "model": cfg.classifier.model or "default",
        "detector": cfg.detector.type,
    }


def run(
    cfg, fps: float, seconds: float, warmup_s: float, scenes: list[str] | None = None, viewer: bool = False
) -> dict:
    """Every scene, gated (as configured) then ungated; the ratio is gated CPU / ungated CPU. viewer: a third
    run, gated with one live-preview viewer connected."""
    from edge.app import build_parts, configure_process

    known = [name for name, _ in SCENES]
    unknown = [s for s in scenes or () if s not in known]
    if unknown:
        raise UserError(f"unknown scene(s) {unknown}; fix: --scenes takes a comma-separated subset of {known}")
    configure_process()  # as the daemon runs
    classifier, detector, _ = build_parts(cfg)
    parts = (classifier, detector)
    out: dict[str, dict] = {}
    for name, faces in SCENES:
        if scenes and name not in scenes:
            continue
        frames = demo_frames() if faces < 0 else scene_frames(faces)
        gated = measure(cfg, parts, frames, fps, seconds, warmup_s)
        plain = measure(ungated(cfg), parts, frames, fps, seconds, warmup_s)
        g, u = gated["cpu_percent"], plain["cpu_percent"]
        row = {"gated": gated, "ungated": plain, "cpu_ratio": round(g / u, 3) if u else None}
        if viewer:
            row["gated_viewer"] = measure(cfg, parts, frames, fps, seconds, warmup_s, viewer=True)
        out[name] = row
        _print_row(name, row)
    return out


def _print_row(name: str, row: dict) -> None:
    for mode in ("gated", "ungated", "gated_viewer"):
        if mode not in row:
            continue
        r = row[mode]
        total = r["latency_ms"].get("total", {})
        print(
            f"  {name:<10} {mode:<12} CPU {r['cpu_percent']:6.2f}% | {r['processed_fps']:5.1f} fps | detector "
            f"{r['detector_runs_per_s']:5.1f}/s | classify {r['classifications_per_s']:6.1f}/s | "
            f"{r['faces_per_frame']:.2f} faces/frame | {r['events']} events | total p50 {total.get('p50', 0):.2f} ms"
        )
    if row["cpu_ratio"] is not None:
        print(f"  {name:<10} gated / ungated CPU = {row['cpu_ratio']:.3f}")
