"""Printing and saving for `emotion-edge bench`."""

from __future__ import annotations

import json
import os
import time

from edge import bench
from edge.config import load_config
from edge.core.errors import UserError


def _source(args, cfg):
    if args.source == "synthetic":
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise UserError(f"--size {args.size!r} is not WxH, e.g. 640x480") from None
        return bench.SyntheticSource(args.faces, w, h), f"synthetic {w}x{h}, {args.faces} face(s)"
    from dataclasses import replace

    from edge.camera import make_source

    if args.source == "config":
        return make_source(cfg.camera), f"camera {cfg.camera.type}"
    cam = (
        replace(cfg.camera, type="demo")
        if args.source == "demo"
        else replace(cfg.camera, type="file", path=args.source)
    )
    if cam.type == "file" and not os.path.isfile(cam.path):
        raise UserError(f"--source {args.source} is not 'synthetic', 'demo', 'config' or a video file")
    return make_source(replace(cam, realtime=False, loop=True)), f"{cam.type} {cam.path or 'demo clip'}"


def _print_pipeline(r: dict, what: str) -> None:
    print(
        f"pipeline: {what}; model {r['model']['name']} {r['model']['variant']}, detector {r['detector']}, "
        f"{r['model']['threads']} thread(s)"
    )
    print(
        f"  end-to-end {r['fps']:.1f} FPS over {r['frames']} frames | {r['faces_per_second']:.1f} faces/s "
        f"({r['faces_per_frame']:.2f}/frame) | CPU {r['cpu_percent']:.0f}% | peak RSS {r['peak_rss_mb']:.0f} MB"
    )
    print(f"  {'stage':<11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for stage, v in r["latency_ms"].items():
        if v:
            print(f"  {stage:<11} {v['p50']:>8.2f} {v['p95']:>8.2f} {v['p99']:>8.2f}")
    for key in ("cpu_temp_c", "throttled"):
        if key in r:
            print(f"  {key}: {r[key]}")


def main(args) -> int:
    if args.frames < 1 or args.warmup < 0:
        raise UserError(f"--frames {args.frames} --warmup {args.warmup}: fix: --frames 1 or more, --warmup 0 or more")
    cfg = load_config(args.config)
    result: dict = {
        "schema_version": bench.BENCH_SCHEMA,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": bench.machine(),
        "label": args.label or bench.machine()["machine"],
        "measured": True,
    }
    if args.all_models:
        threads = sorted({1, args.threads or os.cpu_count() or 1})
        rows = bench.models_table(None, threads, args.frames)
        result["models"] = rows
        print(f"{'model':<20} {'variant':<8} {'threads':>7} {'median ms':>10} {'p95 ms':>8} {'size KB':>8}")
        for r in rows:
            print(
                f"{r['model']:<20} {r['variant']:<8} {r['threads']:>7} {r['median_ms']:>10.3f} {r['p95_ms']:>8.3f} "
                f"{r['size_kb']:>8.1f}"
            )
    else:
        cfg = bench.configure(cfg, args.model, args.variant, args.detector, args.threads)
        source, what = _source(args, cfg)
        result["source"] = what
        result["pipeline"] = bench.run_pipeline(cfg, source, args.frames, args.warmup)
        _print_pipeline(result["pipeline"], what)
        if args.compare_fer:
            src2, _ = _source(args, cfg)
            src2.open()
            frames = [src2.read() for _ in range(min(args.frames, 100))]
            fer = bench.compare_fer(frames)
            if fer is None:
                print(
                    "fer: the 'fer' package is not installed here; fix: run 'bash tests/bench/fer-env.sh', "
                    "then '.venv-fer/bin/emotion-edge bench --compare-fer'"
                )
            else:
                fer["ratio"] = round(result["pipeline"]["fps"] / fer["fps"], 2) if fer["fps"] else None
                result["fer"] = fer
                print(
                    f"fer pipeline: {fer['fps']:.1f} FPS on the same {fer['frames']} frames "
                    f"({fer['faces_per_frame']:.2f} faces/frame found) -> emotion-edge is {fer['ratio']}x its FPS"
                )
    if args.camera_rate and not args.all_models:
        from edge import bench_rate

        scenes = [s.strip() for s in args.scenes.split(",")] if args.scenes else None
        print(f"camera rate {args.fps:g} fps, {args.seconds:g} s per run after {args.warmup_s:g} s warm-up:")
        result["camera_rate"] = bench_rate.run(cfg, args.fps, args.seconds, args.warmup_s, scenes, args.viewer)
        result["camera_rate_setup"] = {"fps": args.fps, "seconds": args.seconds, "config": bench_rate.knobs(cfg)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.compare:
        lines, worse = bench.compare_reference(result, args.compare, args.tolerance)
        print("\n".join(lines))
        if worse:
            print(f"emotion-edge bench: {worse} number(s) worse than the reference by more than {args.tolerance:.0%}")
            return 1
    return 0
