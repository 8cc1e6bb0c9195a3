"""`emotion-edge soak`: the daemon itself on a camera-paced source for a long time; RSS and CPU every interval.

A command, not a test: it prints one line per interval and writes the series as JSON, so a memory leak or
a slow CPU creep shows as a slope (`rss_slope_mb_per_min`, computed after the first interval's warm-up).
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge import app
from edge.bench import machine
from edge.config import load_config
from edge.publish.null import NullPublisher


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def soak(config: Path | None, minutes: float, interval_s: float, out: Path | None) -> dict:
    cfg = load_config(config)
    if config is None:  # the built-in demo clip, paced like a 30 fps camera, looping
        cfg = replace(cfg, camera=replace(cfg.camera, type="demo", realtime=True, loop=True, fps=30.0))
    holder: dict = {}
    samples: list[dict] = []
    stop = threading.Event()

    def sampler() -> None:
        t_last, cpu_last, frames_last = time.monotonic(), _cpu_s(), 0
        k = 0
        while not stop.wait(interval_s):
            pipe = holder.get("pipeline")
            now, cpu = time.monotonic(), _cpu_s()
            frames = pipe.stats.frames if pipe else 0
            k += 1
            row = {
                "interval": k,
                "t_s": round(k * interval_s, 1),
                "rss_mb": round(_rss_mb(), 1),
                "cpu_percent": round(100.0 * (cpu - cpu_last) / (now - t_last), 1),
                "processed_fps": round((frames - frames_last) / (now - t_last), 2),
                "faults": {
                    "camera_outages": pipe.capture.health.outages if pipe else 0,
                    "frames_failed": pipe.frames_failed if pipe else 0,
                },
            }
            samples.append(row)
            print(
                f"soak {row['t_s']:>7.0f} s  RSS {row['rss_mb']:7.1f} MB  CPU {row['cpu_percent']:5.1f}%  "
                f"{row['processed_fps']:6.2f} fps",
                flush=True,
            )
            t_last, cpu_last, frames_last = now, cpu, frames

    thread = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
    thread.start()
    try:
        app.run(cfg, minutes * 60.0, publisher=NullPublisher(), on_pipeline=lambda p: holder.__setitem__("pipeline", p))
    finally:
        stop.set()
        thread.join(timeout=5)
    steady = samples[1:]
    slope = (
        float(np.polyfit([r["t_s"] / 60.0 for r in steady], [r["rss_mb"] for r in steady], 1)[0])
        if len(steady) >= 2
        else None
    )
    result = {
        "schema_version": 1,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": machine(),
        "camera": {"type": cfg.camera.type, "fps": cfg.camera.fps},
        "minutes": minutes,
        "interval_s": interval_s,
        "samples": samples,
        "rss_slope_mb_per_min": None if slope is None else round(slope, 3),
        "mean_cpu_percent": round(float(np.mean([r["cpu_percent"] for r in steady])), 1) if steady else None,
    }
    print(
        f"soak: {minutes:g} min, RSS slope after warm-up {result['rss_slope_mb_per_min']} MB/min, "
        f"mean CPU {result['mean_cpu_percent']}% of one core"
    )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return result
