"""Export a trained Keras model to full-integer int8 TFLite (uint8 in/out) and float32; register both (a float file
too large to ship stays in the run folder as the float reference)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.manifest import Manifest, labels_digest, sha256_file, tensor_record
from edge.core.preprocess import PreprocessSpec
from edge.core.runtime import make_interpreter

from .dataset import DataOptions
from .specs import PRODUCTION_MODEL

log = logging.getLogger(__name__)


def calibration_set(x_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A class-agnostic random sample of real training crops (already through the shared preprocessing)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x_train), size=min(n, len(x_train)), replace=False)
    return x_train[np.sort(idx)]


# A float file larger than this (a three-network ensemble's: 27.5 MB) stores its weights as float16: computed in
# float32 as before, half the bytes in git and on the board. One still larger even so (five or six networks) is not
# shipped: `export` leaves it in the run folder as the model's float reference (manifest `float_reference`), which
# `evaluate` measures as the float32 numbers; the model ships its int8 file only.
FLOAT_FILE_LIMIT = 20_000_000


def convert(model, calib: np.ndarray | None, float16_weights: bool = False) -> bytes:
    """float32 TFLite when calib is None (weights stored as float16 with float16_weights, expanded to float32 when
    the interpreter loads them); otherwise full-integer int8 with uint8 input and output.

    The model starts with Rescaling(1/255), so calibration on 0..255 inputs gives the input tensor
    scale 1 and zero point 0: the device feeds its preprocessed bytes unchanged.
    """
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if calib is None and float16_weights:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    if calib is not None:

        def representative():
            for x in calib:
                yield [x[None].astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    # The converter prints its SavedModel signature to stdout; keep the CLI's output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert()


def architecture(model) -> dict:
    """Layers, parameters and activations, for the manifest and the comparison report. An ensemble (`combine`)
    also lists each member network's own (`members`), since its layers are those networks side by side."""
    import keras

    layers = []
    for layer in model.layers:
        cfg = layer.get_config()
        item = {"name": layer.name, "type": type(layer).__name__, "params": int(layer.count_params())}
        shape = getattr(layer, "output", None)
        if shape is not None:
            item["output_shape"] = [d for d in layer.output.shape[1:]]
        for key in ("filters", "kernel_size", "strides", "units", "rate", "pool_size"):
            if key in cfg:
                item[key] = cfg[key]
        act = cfg.get("activation")
        if act and act != "linear":
            item["activation"] = act
        if type(layer).__name__ == "ReLU":
            item["activation"] = "relu"
        layers.append(item)
    members = [architecture(layer) for layer in model.layers if isinstance(layer, keras.Model)]
    return {
        "name": model.name,
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "layers": layers,
        **({"members": members} if members else {}),
    }


def export(
    name: str,
    run_dir: str | Path,
    models_dir: str | Path,
    data: DataOptions,
    calib_n: int = 500,
    float_limit: int = FLOAT_FILE_LIMIT,
) -> dict:
    """int8 and float32 TFLite files of RUN_DIR's model in models_dir, registered in its manifest. A float file over
    float_limit stores float16 weights; one still over it stays in run_dir as the float reference (not shipped)."""
    import keras

    run_dir, models_dir = Path(run_dir), Path(models_dir)
    info_path = run_dir / "train.json"
    if not (run_dir / "model.keras").is_file() or not info_path.is_file():
        raise UserError(f"no trained model in {run_dir}; fix: run 'emotion-trainer train {name} DATA' first")
    info = json.loads(info_path.read_text())
    spec = PreprocessSpec.from_dict(info["preprocess"])
    labels = tuple(info["labels"])
    model = keras.models.load_model(str(run_dir / "model.keras"))
    train = data.load("train", labels, spec)
    calib = calibration_set(train.x, calib_n, info["recipe"].get("seed", 0))  # an ensemble has no one seed
    models_dir.mkdir(parents=True, exist_ok=True)
    variants, reference = {}, None
    for variant, calib_x in (("int8", calib), ("float32", None)):
        t0 = time.monotonic()
        blob = convert(model, calib_x)
        half = calib_x is None and len(blob) > float_limit
        if half:
            blob = convert(model, None, float16_weights=True)
        shipped = calib_x is not None or len(blob) <= float_limit
        path = (models_dir if shipped else run_dir) / f"{name}.{variant}.tflite"
        if not shipped:  # a float file an earlier export shipped would be left over, listed nowhere
            (models_dir / path.name).unlink(missing_ok=True)
        path.write_bytes(blob)
        interp = make_interpreter(path)
        record = {
            "file": path.name,
            "sha256": sha256_file(path),
            "labels_digest": labels_digest(labels, sha256_file(path)),
            "size_bytes": path.stat().st_size,
            "input": tensor_record(interp.get_input_details()[0]),
            "output": tensor_record(interp.get_output_details()[0]),
            **({"weights": "float16"} if half else {}),
        }
        if shipped:
            variants[variant] = record
        else:
            reference = {"folder": str(run_dir), **record}
        log.info(
            "exported %s (%d bytes%s) in %.1f s",
            path,
            path.stat().st_size,
            "" if shipped else f", over {float_limit} even with float16 weights: the float reference, not shipped",
            time.monotonic() - t0,
        )
    entry = {
        "version": None,  # set by Manifest.update from the files and decision settings (model_version)
        "labels": list(labels),
        "preprocess": spec.to_dict(),
        "variants": variants,
        "float_reference": reference,
        "architecture": architecture(model),
        "training": {
            k: info[k]
            for k in (
                "arch",
                "backbone",
                "recipe",
                "train_counts",
                "val_counts",
                "epochs_run",
                "complete",
                "minutes_total",
                "head_from_pretrain",
                "teachers",
                "ensemble",
                "refit",
                "seconds_this_run",
                "best_val_accuracy",
                "val_loss",
                "backend",
                "device",
                "tensorflow",
                "jax",
            )
            if k in info
        },
        "provenance": {
            "data": info["data"],
            "faces": info["faces"],
            "command": info["command"],
            "trained": info["date"],
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "calibration": f"{len(calib)} random training crops through edge.core.preprocess",
            "selection": "a refit on train + val: its epochs, TTA and calibration are those val chose for the model "
            "it refits (training.refit); test used only by 'evaluate'"
            if info.get("refit")
            else "early stopping and every choice on the val split; test used only by 'evaluate'",
        },
        "metrics": None,
    }
    Manifest(models_dir).update(name, entry, default=(name == PRODUCTION_MODEL) or None)
    return entry
