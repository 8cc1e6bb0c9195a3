"""Evaluate the EXPORTED models through the device's own classifier on a held-out split."""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.bench import cpu_name
from edge.classify import calibration
from edge.classify import tta as tta_policies
from edge.classify.tflite import TFLiteClassifier
from edge.core.errors import UserError
from edge.core.manifest import Manifest, ModelEntry
from edge.core.metrics import evaluate_probs
from edge.core.preprocess import PreprocessSpec
from edge.core.runtime import runtime_name

from .dataset import DataOptions
from .robustness import device_predict, measure_each
from .train import read_history

log = logging.getLogger(__name__)


def predict_all(clf: TFLiteClassifier, x: np.ndarray) -> np.ndarray:
    return np.stack([clf.probabilities(face) for face in x])


def choose_tta(scores: dict[str, float], margin: float = 0.002) -> str:
    """The policy val chose: walking from the cheapest, a policy replaces the one kept so far only if its val
    accuracy beats it by more than `margin` per extra interpreter pass (mirror: 0.2 point; the six-view
    "zoom-flip" over mirror: 0.8 point), so per-face latency grows only where val pays for it."""
    kept = tta_policies.POLICIES[0]
    for policy in tta_policies.POLICIES[1:]:
        extra = tta_policies.view_count(policy) - tta_policies.view_count(kept)
        if scores[policy] > scores[kept] + margin * extra:
            kept = policy
    return kept


EXPOSURE_CLEAN_TOLERANCE = 0.002  # clean val score (accuracy + macro-F1) it may cost: about one face in 1000
EXPOSURE_GAIN = 0.01  # mean val accuracy over the corrupted sets (trainer/robustness.py) it must add


def exposure_bounds(faces: np.ndarray) -> tuple[float, float, float]:
    """The range of typical exposure in preprocessed uint8 faces (NHWC): the 5th and 95th percentiles of their
    grey-level means and the 5th percentile of their standard deviations."""
    f = faces.reshape(len(faces), -1).astype(np.float32)
    means, stds = f.mean(axis=1), f.std(axis=1)
    lo, hi = np.percentile(means, [5, 95])
    return round(float(lo), 2), round(float(hi), 2), round(float(np.percentile(stds, 5)), 2)


def choose_exposure(entry: ModelEntry, data: DataOptions, exposure: str = "auto") -> tuple[PreprocessSpec, dict]:
    """The preprocessing to ship, with exposure normalisation on or off (edge.core.preprocess), decided on VAL.

    "on" stretches faces outside the training faces' range of exposure into it (exposure_bounds of the train
    split, measured here); "auto" keeps it only if, int8 without TTA or calibration, it costs at most
    EXPOSURE_CLEAN_TOLERANCE of the clean val score (accuracy + macro-F1) and adds more than EXPOSURE_GAIN to the
    mean val accuracy over the corrupted sets of `emotion-trainer robustness`; "off" removes it. Returns (spec, the
    manifest's `exposure_selection`)."""
    off = replace(entry.preprocess, exposure=None)
    if exposure == "off":
        return off, {"chosen": "off", "forced": True}
    bounds = exposure_bounds(data.load("train", entry.labels, off).x)
    on = replace(off, exposure=bounds)
    record: dict = {"bounds": {"mean": list(bounds[:2]), "min_std": bounds[2], "from": "train"}}
    if exposure == "on":
        return on, {**record, "chosen": "on", "forced": True}
    if data.faces != "cropped":
        log.info("%s: exposure normalisation left off: choosing it needs face crops (--faces cropped)", entry.name)
        return off, {"chosen": "off", "why": "not face crops"}
    clf = TFLiteClassifier(entry, "int8", num_threads=2, tta="none", calibration={})
    measured = measure_each({"off": device_predict(clf, off), "on": device_predict(clf, on)}, entry.labels, data, "val")
    scores = {
        choice: {
            "clean_score": round(r["clean"]["accuracy"] + r["clean"]["macro_f1"], 4),
            "mean_corrupted_accuracy": r["mean_corrupted_accuracy"],
        }
        for choice, r in measured.items()
    }
    keep = (
        scores["on"]["clean_score"] >= scores["off"]["clean_score"] - EXPOSURE_CLEAN_TOLERANCE
        and scores["on"]["mean_corrupted_accuracy"] > scores["off"]["mean_corrupted_accuracy"] + EXPOSURE_GAIN
    )
    log.info("%s: exposure normalisation %s on val %s", entry.name, "on" if keep else "off", scores)
    return (on if keep else off), {**record, "chosen": "on" if keep else "off", "split": "val", "int8": scores}


def select_on_val(
    entry: ModelEntry, data: DataOptions, tta: str = "auto", calibrate: str = "auto", spec: PreprocessSpec | None = None
) -> dict:
    """Choose test-time augmentation and the decision calibration on the VAL split (never test), int8 as shipped.

    tta "auto": the policies of edge.classify.tta, cheapest first, each kept only if it beats the one kept so far
    by more than 0.2 point of val accuracy per extra pass (choose_tta); calibrate "auto": per-class
    log-probability offsets that raise val accuracy + macro-F1 (edge.classify.calibration.search). Returns the
    manifest fields {"tta", "tta_selection"?, "calibration", "calibration_selection"?}. spec: the preprocessing
    (choose_exposure's; default the entry's).
    """
    val = data.load("val", entry.labels, spec or entry.preprocess)
    probs = {
        choice: predict_all(TFLiteClassifier(entry, "int8", num_threads=2, tta=choice, calibration={}), val.x)
        for choice in (tta_policies.POLICIES if tta == "auto" else (tta,))
    }
    fields: dict = {"tta": tta, "tta_selection": None}
    if tta == "auto":
        scores = {k: float((p.argmax(1) == val.y).mean()) for k, p in probs.items()}
        fields["tta"] = choose_tta(scores)
        fields["tta_selection"] = {"split": "val", "int8_accuracy": {k: round(v, 4) for k, v in scores.items()}}
        log.info("%s: test-time augmentation %r chosen on val %s", entry.name, fields["tta"], scores)
    fields["calibration"] = None
    fields["calibration_selection"] = None
    if calibrate == "auto":
        offsets, before, after, held_out = calibration.search(probs[fields["tta"]], val.y)
        if offsets.any():
            fields["calibration"] = {c: round(float(v), 2) + 0.0 for c, v in zip(entry.labels, offsets, strict=True)}
        fields["calibration_selection"] = {
            "split": "val",
            "objective": "int8 accuracy + macro-F1",
            "before": round(before, 4),
            "after": round(after, 4),  # on the faces the offsets were fitted to: optimistic
            "held_out_gain": round(held_out, 4),  # what they add on faces they did not see (cross-validated)
            "judged": round(before + held_out, 4),  # the val score candidates are compared by (README)
        }
        log.info(
            "%s: calibration %s chosen on val (score %.4f -> %.4f on the faces fitted, %.4f held out)",
            entry.name,
            fields["calibration"],
            before,
            after,
            before + held_out,
        )
    return fields


def carried(refit: dict, tta: str = "auto", calibrate: str = "auto") -> dict:
    """A refit's decision settings: val is in its training data, so 'auto' keeps what val chose for the model
    it refits (its `training.refit` record); a forced --tta or --calibrate none still applies."""
    return {
        "exposure_selection": {"carried_from": refit["of"]["int8_sha256"], "chosen": _on(refit.get("exposure"))},
        "tta": refit["tta"] if tta == "auto" else tta,
        "tta_selection": {"carried_from": refit["of"]["int8_sha256"]} if tta == "auto" else None,
        "calibration": refit["calibration"] if calibrate == "auto" else None,
        "calibration_selection": {"carried_from": refit["of"]["int8_sha256"]} if calibrate == "auto" else None,
    }


def _on(target) -> str:
    return "off" if target is None else "on"


def _rounded(m: dict) -> dict:
    def r(v):
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, dict):
            return {k: r(x) for k, x in v.items()}
        return v

    return r(m)


def evaluate(
    name: str,
    models_dir: str | Path,
    data: DataOptions,
    split: str = "test",
    latency_runs: int = 200,
    run_dir: Path | None = None,
    tta: str = "auto",
    calibrate: str = "auto",
    exposure: str = "auto",
) -> dict:
    """Metrics for every variant, int8-vs-float agreement and latency (TTA included), written to the manifest (once)
    and reports/NAME.json. tta: "auto" chooses it on val, a policy name forces it; calibrate: "auto" chooses the
    decision offsets on val, "none" removes them; exposure: "auto" chooses the normalisation on val
    (choose_exposure), "on"/"off" force it. A refit keeps the three as val chose them for the model it refits,
    unless forced."""
    models_dir = Path(models_dir)
    manifest = Manifest(models_dir)
    entry = manifest.entry(name)
    refit = (entry.data.get("training") or {}).get("refit")
    if refit and split == "val":
        raise UserError(f"{name} is a refit: val is in its training data; fix: evaluate it on --split test")
    if refit:
        chosen = carried(refit, tta, calibrate)
        spec = replace(entry.preprocess, exposure=refit.get("exposure"))
        if exposure != "auto":  # forced, as --tta and --calibrate none may be: no val involved
            spec, chosen["exposure_selection"] = choose_exposure(entry, data, exposure)
    else:
        spec, chosen_exposure = choose_exposure(entry, data, exposure)
        chosen = {**select_on_val(entry, data, tta, calibrate, spec), "exposure_selection": chosen_exposure}
    held_out = data.load(split, entry.labels, spec)
    results, preds, latency = {}, {}, {}
    for variant, source in _measured(entry):
        clf = TFLiteClassifier(
            source, variant, num_threads=2, tta=chosen["tta"], calibration=chosen["calibration"] or {}
        )
        probs = predict_all(clf, held_out.x)
        preds[variant] = probs.argmax(1)
        results[variant] = _rounded(evaluate_probs(probs, held_out.y, entry.labels))
        one = TFLiteClassifier(
            source, variant, num_threads=1, tta=chosen["tta"], calibration=chosen["calibration"] or {}
        )
        latency[variant] = one.latency_ms(held_out.x[0], latency_runs)
        log.info(
            "%s %s: accuracy %.4f macro-F1 %.4f",
            name,
            variant,
            results[variant]["accuracy"],
            results[variant]["macro"]["f1"],
        )
    agreement = float((preds["int8"] == preds["float32"]).mean()) if {"int8", "float32"} <= set(preds) else None
    metrics = {
        "split": split,
        "data": str(Path(data.root).resolve()),
        "n": int(len(held_out.y)),
        "counts": held_out.counts(),
        "per_class_limit": data.per_class_limit or None,
        **results,
        "int8_float_agreement": round(agreement, 4) if agreement is not None else None,
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    lat = {
        "threads": 1,
        "machine": f"{platform.machine()} {cpu_name()}",
        "runtime": runtime_name(),
        **latency,
    }
    manifest.update(name, {**chosen, "preprocess": spec.to_dict(), "metrics": metrics, "latency_ms": lat})
    reports = models_dir / "reports"
    report = {
        "model": name,
        "metrics": metrics,
        "latency_ms": lat,
        "history": _history(run_dir)
        if run_dir is not None and run_dir.is_dir()
        else _previous_history(reports / f"{name}.json"),
    }
    members = (entry.data.get("training") or {}).get("ensemble")
    if members:  # an ensemble has no curve of its own: its members' (from their run folders, else the last report)
        report["members"] = _members_history(members, reports / f"{name}.json")
    reports.mkdir(exist_ok=True)
    (reports / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _measured(entry: ModelEntry) -> list[tuple[str, ModelEntry]]:
    """(variant, the entry whose file it is) for every variant evaluate measures: the shipped ones and, for a model
    whose float file was too large to ship, its float reference (the float32 numbers and the int8 agreement)."""
    pairs = [(variant, entry) for variant in entry.data["variants"]]
    reference = entry.float_reference()
    if reference is not None and "float32" not in entry.data["variants"]:
        path = reference.path("float32")
        if not path.is_file():
            raise UserError(
                f"{entry.name}'s float reference {path} is not here (export keeps it in the run folder, not in "
                f"the models folder); fix: run 'emotion-trainer export {entry.name} DATA --runs R' with the --runs "
                "it was exported from (an ensemble: its 'combine' command first), then evaluate"
            )
        pairs.append(("float32", reference))
    return pairs


def _previous_history(path: Path) -> list[dict]:
    """The curves of an earlier evaluation, kept when the run folder is not on this machine (re-evaluating a
    shipped model must not lose its training history). A run folder without curves (an ensemble) has none."""
    try:
        return list(json.loads(path.read_text()).get("history") or [])
    except (OSError, ValueError, AttributeError):
        return []


def _members_history(members: list[dict], previous: Path) -> list[dict]:
    """{run, history} of each member of an ensemble, from the run folder its record names when it is here."""
    try:
        before = {m["run"]: m["history"] for m in json.loads(previous.read_text()).get("members") or []}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        before = {}
    return [{"run": m["run"], "history": _history(Path(m["run"])) or before.get(m["run"], [])} for m in members]


def _history(run_dir: Path | None) -> list[dict]:
    """Per-epoch train/val accuracy and loss from the run's CSVLogger file (for the report's curves)."""
    return [{k: (int(v) if k == "epoch" else round(v, 5)) for k, v in row.items()} for row in read_history(run_dir)]
