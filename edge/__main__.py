"""emotion-edge: real-time facial-emotion recognition on camera boards.

Commands: run (the daemon), check-config, example-config, demo (the daemon on the built-in clip),
models (shipped models and their measured metrics), analyze (images, folders, videos), fetch (face
detectors and demo image from the package registry), bench (FPS and latency on this hardware), soak
(the daemon for a long time: RSS and CPU per interval), listen (the reference MQTT subscriber).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge import assets
from edge.core.errors import UserError
from edge.detect import STILL_IMAGE_PAD


def fmt(v: object, spec: str) -> str:
    """A number formatted, or "-" where the manifest has none (an ensemble's epochs), right-aligned alike."""
    return format(v, spec) if isinstance(v, (int, float)) else format("-", ">" + spec.split(".")[0].rstrip("dfe"))


def _models_table(root: Path | None) -> int:
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    manifest = Manifest(root or models_dir())
    if not manifest.names:
        print(f"no models in {manifest.path}; train them with 'emotion-trainer suite'")
        return 1
    print(
        f"{'model':<20} {'labels':<30} {'int8 acc':>8} {'macro-F1':>8} {'float acc':>9} {'agree':>6} {'int8 ms':>7} "
        f"{'tta':<9} {'size KB':>7} {'epochs':>6} {'train min':>9} version"
    )
    for name in manifest.names:
        entry = manifest.entry(name)
        e = entry.data
        m, lat, tr = e.get("metrics") or {}, e.get("latency_ms") or {}, e.get("training") or {}
        # minutes over every invocation of a run split by --max-minutes; older runs recorded one invocation
        minutes = tr.get("minutes_total") or (tr["seconds_this_run"] / 60 if tr.get("seconds_this_run") else None)
        i8, fl = m.get("int8") or {}, m.get("float32") or {}
        star = "*" if name == manifest.default_model else " "
        print(
            f"{name + star:<20} {','.join(e['labels']):<30} {fmt(i8.get('accuracy'), '8.4f')} "
            f"{fmt((i8.get('macro') or {}).get('f1'), '8.4f')} {fmt(fl.get('accuracy'), '9.4f')} "
            f"{fmt(m.get('int8_float_agreement'), '6.3f')} {fmt((lat.get('int8') or {}).get('p50'), '7.2f')} "
            f"{e.get('tta') or 'none':<9} {e['variants']['int8']['size_bytes'] / 1024:7.0f} "
            f"{fmt(tr.get('epochs_run'), '6d')} {fmt(minutes, '9.0f')} {entry.version}"
        )
    print(
        f"* default model. Metrics: {manifest.path} (split={m.get('split', '-')}, produced by 'emotion-trainer "
        "evaluate')"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emotion-edge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    s = sub.add_parser(
        "run",
        help="run the daemon: camera -> faces -> emotions -> MQTT events",
        description="Run until SIGTERM/SIGINT (or the end of a non-looping file source).",
    )
    s.add_argument("--config", type=Path, help="TOML config (default: all defaults: demo clip, MQTT on localhost)")
    s.add_argument("--publisher", choices=("mqtt", "stdout"), help="override the config's publisher")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s = sub.add_parser(
        "check-config", help="parse and check a config, the model and the camera settings; exit 0 if usable"
    )
    s.add_argument("--config", type=Path, required=True)
    sub.add_parser("example-config", help="print the fully documented example config (all defaults)")
    s = sub.add_parser(
        "demo", help="the daemon on the built-in clip: MQTT to a local broker when one answers, else stdout"
    )
    s.add_argument("--duration", type=float, default=20.0, help="seconds to run (default %(default)s)")
    s.add_argument("--host", default="localhost")
    s.add_argument("--port", type=int, default=1883)
    s = sub.add_parser(
        "fetch",
        help="fetch the BlazeFace detectors and the demo image (sha256-checked) into models/",
        description="Download the pinned mediapipe/scikit-image wheels from PyPI (or read them from --wheel-dir), "
        "check their sha256, and extract the face detectors and the demo image; then build the demo clip.",
    )
    assets.add_arguments(s)
    s = sub.add_parser(
        "bench",
        help="benchmark the pipeline (FPS, per-stage latency) or every model on this hardware",
        description="Real pipeline on a synthetic clip (default), a video file or the config's camera, after a "
        "warm-up. Prints a table; --json writes the machine-readable result.",
    )
    s.add_argument(
        "--source", default="synthetic", help="'synthetic' (N astronaut faces), 'demo', a video file, or 'config'"
    )
    s.add_argument("--config", type=Path, help="config for --source config (and model/detector defaults)")
    s.add_argument(
        "--faces", type=int, default=1, choices=range(0, 7), metavar="N", help="faces in the synthetic clip (0-6)"
    )
    s.add_argument("--size", default="640x480", help="synthetic frame size WxH (default %(default)s)")
    s.add_argument(
        "--frames",
        type=int,
        default=300,
        help="frames timed (pipeline), or faces timed per model and thread count with --all-models (default 300)",
    )
    s.add_argument("--warmup", type=int, default=30)
    s.add_argument("--model", help="model name (default: the manifest's default)")
    s.add_argument("--variant", choices=("int8", "float32"), default="int8")
    s.add_argument("--detector", choices=("blazeface-short", "blazeface-full"))
    s.add_argument("--threads", type=int, help="interpreter threads for detector and classifier")
    s.add_argument(
        "--all-models", action="store_true", help="per-face latency and size of every shipped model (no pipeline)"
    )
    s.add_argument(
        "--camera-rate",
        action="store_true",
        help="the daemon's frame loop paced at --fps, per scene (empty, 1/3/5 faces, demo clip), gated and "
        "ungated: CPU %% of a core, detector runs and classifications per second, events",
    )
    s.add_argument("--fps", type=float, default=30.0, help="camera rate for --camera-rate (default %(default)s)")
    s.add_argument(
        "--viewer", action="store_true", help="--camera-rate also runs gated with one live-preview viewer connected"
    )
    s.add_argument(
        "--warmup-s", type=float, default=3.0, help="seconds before --camera-rate measures (default %(default)s)"
    )
    s.add_argument("--seconds", type=float, default=15.0, help="measured seconds per run (default %(default)s)")
    s.add_argument(
        "--scenes", help="comma-separated subset for --camera-rate: empty, '1 face', '3 faces', '5 faces', 'demo clip'"
    )
    s.add_argument(
        "--compare-fer", action="store_true", help="also run the 'fer' package's pipeline on the same frames"
    )
    s.add_argument(
        "--compare",
        type=Path,
        help="reference JSON (tests/bench/reference/<device>.json): exit 1 when a number is worse beyond --tolerance",
    )
    s.add_argument(
        "--tolerance",
        type=float,
        default=0.25,
        help="allowed shortfall against --compare, as a fraction (default %(default)s: 25%% fewer FPS or more ms)",
    )
    s.add_argument("--json", type=Path, help="write the result as JSON here (usable as a --compare reference)")
    s.add_argument("--label", help="a name for this device in the JSON, e.g. 'Raspberry Pi 5, 8 GB'")
    s = sub.add_parser(
        "soak",
        help="run the daemon for a long time on a camera-paced source; RSS and CPU per interval",
        description="The daemon itself (no broker: a null publisher that still serialises every payload) on "
        "the built-in demo clip paced at 30 fps, or on --config's camera. Prints a line per "
        "interval; --json writes the series.",
    )
    s.add_argument("--minutes", type=float, default=30.0, help="how long (default %(default)s)")
    s.add_argument("--interval-s", type=float, default=60.0, help="sampling interval (default %(default)s)")
    s.add_argument("--config", type=Path, help="use this config's camera and model (default: the demo clip at 30 fps)")
    s.add_argument("--json", type=Path, help="write the series here")
    s = sub.add_parser(
        "listen",
        help="subscribe to emotion events: de-duplicated, gaps reported per device",
        description="The reference subscriber of the MQTT contract: one device or all, QoS 1, events "
        "de-duplicated by id, every gap in a stream's seq reported (a drop), human lines or "
        "JSON lines; optionally appended to CSV or SQLite. A per-stream summary on exit.",
    )
    s.add_argument("--host", default="localhost")
    s.add_argument("--port", type=int, default=1883)
    s.add_argument("--prefix", default="emotion-edge", help="topic prefix (default %(default)s)")
    s.add_argument("--device", default="+", help="one device_id, or '+' for all (default)")
    s.add_argument("--username")
    s.add_argument("--password-file", type=Path, help="file holding the password")
    s.add_argument("--tls", action="store_true", help="TLS with the system CAs (or --ca-file)")
    s.add_argument("--ca-file")
    s.add_argument("--cert-file")
    s.add_argument("--key-file")
    s.add_argument(
        "--client-id", help="a fixed client id: a persistent session, so the broker queues events while away"
    )
    s.add_argument("--json", action="store_true", help="JSON lines (events, summaries, status, stats, gap records)")
    s.add_argument("--csv", type=Path, help="append events to this CSV file")
    s.add_argument("--sqlite", type=Path, help="append events to this SQLite database (table events)")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--count", type=int, help="stop after this many events")
    s = sub.add_parser("models", help="list the shipped models and their evaluated metrics")
    s.add_argument("--models", type=Path, help="models folder (default: the package's models/)")
    s = sub.add_parser(
        "analyze",
        help="emotions of faces in images, folders or video files",
        description="One line per face: file, frame, box, emotion, confidence, probabilities.",
    )
    s.add_argument("path", type=Path)
    s.add_argument("--model", help="model name (default: the manifest's default, multiclass4-resnet)")
    s.add_argument("--variant", choices=("int8", "float32"), default="int8")
    s.add_argument("--models", type=Path, help="models folder (default: the package's models/)")
    s.add_argument("--no-detect", action="store_true", help="each image is already a cropped face")
    s.add_argument("--detector", default="blazeface-short", choices=("blazeface-short", "blazeface-full"))
    s.add_argument(
        "--pad",
        type=float,
        default=STILL_IMAGE_PAD,
        help="also detect on the image inside a black border of this fraction of its longer side, for faces that "
        "fill or are cut by the image, as in tight photo crops (0: off; default %(default)s, chosen on FER2013 val)",
    )
    s.add_argument(
        "--score",
        action="store_true",
        help="PATH is DIR/<label>/<images>: print the pipeline's accuracy, macro-F1 and per-class recall over it "
        "(the largest face of each image; no face counts as wrong) instead of one line per face",
    )
    s.add_argument(
        "--map",
        action="append",
        metavar="FOLDER=LABEL",
        help="--score: the images of this folder have that label (repeatable), e.g. --map feliz=happy",
    )
    s.add_argument("--every", type=int, default=1, help="analyse every Nth video frame")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--json", action="store_true", help="JSON lines")
    s.add_argument(
        "--annotate",
        type=Path,
        metavar="OUTDIR",
        help="also write annotated copies here: each image (same name and size), each video as NAME.annotated.avi",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.cmd in ("analyze", "models", "example-config", "check-config", "bench", "listen")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.cmd == "fetch":
            from edge.camera.demo import demo_clip_path

            rc = assets.main(args)
            print(f"ok {demo_clip_path()}")
            return rc
        if args.cmd in ("run", "check-config", "example-config", "demo"):
            from edge import cli_daemon

            return cli_daemon.main(args)
        if args.cmd == "bench":
            from edge import cli_bench

            return cli_bench.main(args)
        if args.cmd == "models":
            return _models_table(args.models)
        if args.cmd == "listen":
            from edge.listen import listen

            return listen(args)
        if args.cmd == "soak":
            from edge.soak import soak

            if args.minutes <= 0 or args.interval_s <= 0:
                raise UserError("--minutes and --interval-s must be > 0")
            soak(args.config, args.minutes, args.interval_s, args.json)
            return 0
        if args.cmd == "analyze":
            from edge.analyze import Annotator, Score, Skipped, analyze_frames, format_line, format_score
            from edge.classify.tflite import TFLiteClassifier
            from edge.core.paths import parse_mapping
            from edge.detect import make_detector

            if not args.path.exists():
                raise UserError(f"{args.path} does not exist; fix: pass an image, a video file or a folder of them")
            if not 0.0 <= args.pad <= 1.0:
                raise UserError(f"--pad {args.pad} is out of range; fix: a fraction from 0 (off) to 1")
            clf = TFLiteClassifier.from_manifest(args.model, args.variant, args.threads, args.models)
            det = make_detector("full-frame") if args.no_detect else make_detector(args.detector, pad=args.pad)
            if args.map and not args.score:
                raise UserError("--map names the labels of --score's folders; fix: add --score, or drop --map")
            score = Score(args.path, clf.labels, parse_mapping(args.map)) if args.score else None
            skipped = Skipped()
            every = max(1, args.every)
            annotator = Annotator(args.annotate, args.path, clf.labels, every) if args.annotate else None
            only = score.scored if score else None
            try:
                for file, idx, frame, faces in analyze_frames(args.path, clf, det, every, skipped, only):
                    if score:
                        score.add(file, faces)
                    else:
                        for _, rec in faces:
                            print(format_line(rec, args.json), flush=True)
                    if annotator:
                        annotator.add(file, idx, frame, faces)
            finally:
                if annotator:
                    annotator.close()
            if score:
                summary = score.summary()
                header = {
                    "path": str(args.path),
                    "model": clf.name,
                    "variant": args.variant,
                    "detector": det.name,
                    "pad": None if args.no_detect else args.pad,
                }
                print(json.dumps({**header, **summary}) if args.json else format_score(summary, header))
            if annotator:
                print(
                    f"emotion-edge: analyze: wrote {len(annotator.written)} annotated file(s) to {args.annotate}",
                    file=sys.stderr,
                )
            if skipped.files:
                print(
                    f"emotion-edge: analyze: skipped {len(skipped.files)} unreadable file(s) (warned above)",
                    file=sys.stderr,
                )
            return 0
    except UserError as exc:
        print(f"emotion-edge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
