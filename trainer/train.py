"""Train one spec: augmentation, class weighting, early stopping on val, checkpoints, resume, time limit."""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.preprocess import PreprocessSpec

from .dataset import DataOptions, Split
from .specs import ModelSpec

log = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.weights.h5"


def class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    """'Balanced' weights n_samples / (n_classes * count): rare classes count as much as common ones."""
    counts = np.bincount(y, minlength=n).astype(np.float64)
    return {i: float(len(y) / (n * c)) if c else 0.0 for i, c in enumerate(counts)}


def _dataset(tf, split: Split, batch: int, n_classes: int, training: bool, seed: int, augment: bool):
    ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if training:
        ds = ds.shuffle(len(split.y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)
    aug = None
    if training and augment:
        import keras

        # Geometric jitter of the size a face detector's boxes wobble by, plus mirror faces and lighting.
        aug = keras.Sequential(
            [
                keras.layers.RandomFlip("horizontal", seed=seed),
                keras.layers.RandomRotation(0.06, fill_mode="reflect", seed=seed + 1),
                keras.layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 2),
                keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed + 3),
                keras.layers.RandomContrast(0.2, seed=seed + 4),
                keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 5),
            ],
            name="augment",
        )

    def to_xy(x, y):
        x = tf.cast(x, tf.float32)
        if aug is not None:
            x = tf.clip_by_value(aug(x, training=True), 0.0, 255.0)
        return x, tf.one_hot(y, n_classes)

    return ds.map(to_xy, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _budget_callback(keras, run_dir: Path, lr: float, warmup_epochs: int, epochs: int, steps: int, max_minutes: float):
    """Warm-up then cosine annealing over whichever budget runs out first: epochs or minutes.

    Annealing by elapsed time as well as by step means a run cut by its time limit still ends at a
    low learning rate (the best weights come from a settled model). Elapsed time is persisted so a
    resumed run continues the same schedule.
    """
    state = run_dir / "budget.json"

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            prior = json.loads(state.read_text())["seconds"] if state.is_file() else 0.0
            self.t0 = time.monotonic() - prior
            self.step = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            step = self.epoch * steps + batch
            warm = warmup_epochs * steps
            if step < warm:
                value = lr * (step + 1) / warm
            else:
                by_steps = (step - warm) / max(1, epochs * steps - warm)
                by_time = (time.monotonic() - self.t0) / 60.0 / max_minutes
                progress = min(1.0, max(by_steps, by_time))
                value = lr * (0.02 + 0.98 * 0.5 * (1.0 + np.cos(np.pi * progress)))
            self.model.optimizer.learning_rate.assign(value)

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.monotonic() - self.t0
            state.write_text(json.dumps({"seconds": elapsed}))
            if logs is not None:
                logs["lr"] = float(self.model.optimizer.learning_rate.numpy())
            if elapsed / 60.0 > max_minutes:
                log.warning("time limit of %.0f min reached after epoch %d; stopping", max_minutes, epoch + 1)
                self.model.stop_training = True

    return Budget()


def build_model(spec: ModelSpec, backbone: str, backbone_weights: Path | None, input_shape):
    """The spec's Keras model, with the pre-trained backbone loaded for resnet specs."""
    from .archs import resnet, scratch

    r = spec.recipe
    if spec.arch == "scratch":
        return scratch.build(len(spec.labels), input_shape, r.width, r.dropout, r.weight_decay)
    net = resnet.build_backbone(backbone, input_shape, r.width, r.weight_decay, backbone_weights)
    return resnet.build(len(spec.labels), net, r.dropout)


def train(
    spec: ModelSpec,
    data: DataOptions,
    run_dir: str | Path,
    preprocess: PreprocessSpec,
    backbone: str = "fer-resnet",
    backbone_weights: Path | None = None,
    verbose: int | None = None,
) -> dict:
    """Train (or resume) `spec`; writes model.keras, history.csv, train.json and, for pre-training, the backbone."""
    import keras
    import tensorflow as tf

    r = spec.recipe
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "backup").exists():  # a fresh run, not a resume: drop the old curves and checkpoint
        for stale in ("history.csv", "best.keras", "train.json", "budget.json"):
            (run_dir / stale).unlink(missing_ok=True)
    keras.utils.set_random_seed(r.seed)
    gpus = tf.config.list_physical_devices("GPU")
    log.info(
        "training %s on %s",
        spec.name,
        f"GPU {gpus[0].name}" if gpus else f"CPU ({platform.processor() or platform.machine()})",
    )
    data = replace(data, per_class_limit=r.per_class_limit)  # the recipe's limit (smoke runs), recorded with it
    tr = data.load("train", spec.labels, preprocess)
    va = data.load("val", spec.labels, preprocess)
    log.info("train %s | val %s", tr.counts(), va.counts())
    if spec.arch == "resnet" and backbone == "fer-resnet" and backbone_weights is None and spec.class_set != "fer6":
        log.warning("no backbone weights given: the resnet trains from random initialisation (no transfer)")
    model = build_model(spec, backbone, backbone_weights, preprocess.input_shape)
    steps = int(np.ceil(len(tr.y) / r.batch_size))
    # Linear warm-up (in the budget callback) shields pre-trained backbone weights from the new head's first gradients.
    model.compile(
        optimizer=keras.optimizers.AdamW(r.learning_rate, weight_decay=r.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
        metrics=["accuracy"],
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),  # resume after interruption
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor="val_accuracy", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=r.patience, restore_best_weights=True),
        _budget_callback(keras, run_dir, r.learning_rate, r.warmup_epochs, r.epochs, steps, r.max_minutes),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    t0 = time.monotonic()
    hist = model.fit(
        _dataset(tf, tr, r.batch_size, len(spec.labels), True, r.seed, r.augment),
        validation_data=_dataset(tf, va, r.batch_size, len(spec.labels), False, r.seed, False),
        epochs=r.epochs,
        class_weight=class_weights(tr.y, len(spec.labels)) if r.class_weighting else None,
        callbacks=callbacks,
        verbose=verbose if verbose is not None else (1 if sys.stderr.isatty() else 2),
    )
    seconds = time.monotonic() - t0
    if (run_dir / "best.keras").is_file():
        model.load_weights(str(run_dir / "best.keras"))
    model.save(str(run_dir / "model.keras"))
    if spec.class_set == "fer6":
        backbone_model = keras.Model(model.input, model.get_layer("gap").output, name="backbone")
        backbone_model.save_weights(str(run_dir / BACKBONE_FILE))
    val_loss, val_acc = model.evaluate(
        _dataset(tf, va, r.batch_size, len(spec.labels), False, r.seed, False), verbose=0
    )
    info = {
        "spec": spec.name,
        "labels": list(spec.labels),
        "arch": spec.arch,
        "recipe": r.to_dict(),
        "backbone": backbone if spec.arch == "resnet" else None,
        "backbone_weights": str(backbone_weights) if backbone_weights else None,
        "params": int(model.count_params()),
        "preprocess": preprocess.to_dict(),
        "train_counts": tr.counts(),
        "val_counts": va.counts(),
        "skipped": {"train": tr.skipped, "val": va.skipped},
        "epochs_run": len(hist.history.get("loss", [])),
        "seconds_this_run": round(seconds, 1),
        "best_val_accuracy": round(float(val_acc), 4),
        "val_loss": round(float(val_loss), 4),
        "data": str(Path(data.root).resolve()),
        "faces": data.faces,
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tensorflow": tf.__version__,
        "device": "GPU" if gpus else "CPU",
    }
    (run_dir / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("%s: val accuracy %.4f after %d epochs (%.0f s)", spec.name, val_acc, info["epochs_run"], seconds)
    return info


def require_backbone(path: Path) -> Path:
    if not path.is_file():
        raise UserError(
            f"backbone weights {path} not found; fix: run 'emotion-trainer pretrain' first or pass --backbone-weights "
            "FILE"
        )
    return path
