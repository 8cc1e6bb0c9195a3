"""Train one spec: augmentation, class weighting, early stopping on val, checkpoints, resume, time limit."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.manifest import sha256_file
from edge.core.preprocess import PreprocessSpec

from .dataset import DataOptions, Split
from .specs import ModelSpec

log = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.weights.h5"
# The committed pre-training (backbone weights, head, train.json, history.csv): what a new machine fine-tunes from
# without re-running the pre-training (`emotion-trainer pretrain` reproduces it into RUNS/backbone-pretrain).
PRETRAINED = Path(__file__).resolve().parent / "pretrained"
HEAD_FILE = "head.npz"  # the pre-trained six-class softmax layer, for fine-tunes to start from


def class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    """'Balanced' weights n_samples / (n_classes * count): rare classes count as much as common ones."""
    counts = np.bincount(y, minlength=n).astype(np.float64)
    return {i: float(len(y) / (n * c)) if c else 0.0 for i, c in enumerate(counts)}


def random_erase(tf, x, p: float):
    """Blank one rectangle (2-25% of the face, aspect 0.3-3.3) per image with probability `p`.

    Random erasing (Zhong et al. 2017) makes a classifier use the whole face instead of one cue, the
    way hands, glasses and hair occlude faces in real cameras. Vectorised over the batch; the fill is
    one random grey level per image so grey faces stay grey in every channel.
    """
    if p <= 0.0:
        return x
    shape = tf.shape(x)
    b, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    area = tf.random.uniform([b], 0.02, 0.25) * h * w
    aspect = tf.exp(tf.random.uniform([b], np.log(0.3), np.log(3.3)))
    eh = tf.minimum(tf.sqrt(area * aspect), h)
    ew = tf.minimum(tf.sqrt(area / aspect), w)
    y0 = tf.random.uniform([b]) * (h - eh)
    x0 = tf.random.uniform([b]) * (w - ew)
    yy = tf.range(h)[None, :, None]
    xx = tf.range(w)[None, None, :]
    inside = (
        (yy >= y0[:, None, None])
        & (yy < (y0 + eh)[:, None, None])
        & (xx >= x0[:, None, None])
        & (xx < (x0 + ew)[:, None, None])
        & (tf.random.uniform([b]) < p)[:, None, None]
    )
    fill = tf.random.uniform([b, 1, 1, 1], 0.0, 255.0)
    return tf.where(inside[..., None], fill, x)


def camera_effects(tf, x, p: float):
    """What cheap cameras do to a face, each with probability `p` per image: Gaussian blur (sigma 0.5-1.5 px of
    the 100-px input: focus, motion), sensor noise (sigma 2-10 grey levels) and JPEG re-compression (quality 30-90,
    as streams and snapshots arrive). FER2013 faces are clean web crops; device crops are not."""
    if p <= 0.0:
        return x
    b = tf.shape(x)[0]
    # blur: a separable 5-tap Gaussian per image, sigma drawn per image, applied through a depthwise conv
    sigma = tf.random.uniform([b, 1], 0.5, 1.5)
    taps = tf.exp(-tf.square(tf.range(-2.0, 3.0)[None, :]) / (2.0 * tf.square(sigma)))
    taps = taps / tf.reduce_sum(taps, axis=1, keepdims=True)
    blur_on = tf.cast(tf.random.uniform([b, 1]) < p, tf.float32)
    identity = tf.constant([[0.0, 0.0, 1.0, 0.0, 0.0]])
    taps = blur_on * taps + (1.0 - blur_on) * identity  # (b, 5)

    def blur_one(args):  # reflect-padded so the border does not darken
        img, k = args
        channels = tf.shape(img)[-1]
        img = tf.pad(img[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
        img = tf.nn.depthwise_conv2d(img, tf.tile(k[:, None, None, None], [1, 1, channels, 1]), [1] * 4, "VALID")
        return tf.nn.depthwise_conv2d(img, tf.tile(k[None, :, None, None], [1, 1, channels, 1]), [1] * 4, "VALID")[0]

    x = tf.map_fn(blur_one, (x, taps), fn_output_signature=tf.float32)
    noise_on = tf.cast(tf.random.uniform([b, 1, 1, 1]) < p, tf.float32)
    level = tf.random.uniform([b, 1, 1, 1], 2.0, 10.0)
    grey = tf.random.normal(tf.shape(x)[:3])[..., None]  # one noise field for all channels: grey stays grey
    x = tf.clip_by_value(x + noise_on * level * grey, 0.0, 255.0)

    def jpeg_one(args):
        img, on, quality = args
        redone = tf.image.adjust_jpeg_quality(tf.cast(tf.round(img), tf.uint8), quality)
        return tf.cond(on, lambda: tf.cast(redone, tf.float32), lambda: img)

    jpeg_on = tf.random.uniform([b]) < p
    quality = tf.random.uniform([b], 30, 91, dtype=tf.int32)
    return tf.map_fn(jpeg_one, (x, jpeg_on, quality), fn_output_signature=tf.float32)


def augment_batch(tf, x, erase: float = 0.0, effects: float = 0.0):
    """Training augmentation of a float batch (0-255): what faces look like through real cameras and detectors.

    One projective warp per image does mirror, rotation (+-12 degrees), translation (+-8%) and zoom
    (+-10%): the size by which detector boxes wobble and heads tilt. Then contrast (x0.75-1.25) and
    brightness (+-15%) of exposure and lighting, camera effects (blur, noise, JPEG) and random erasing
    (occlusion). A single warp op
    instead of one per transform is ~3x cheaper, which matters on a 2-core CPU.
    """
    shape = tf.shape(x)
    b, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    flip = tf.where(tf.random.uniform([b]) < 0.5, -1.0, 1.0)
    theta = tf.random.uniform([b], -0.21, 0.21)
    scale = tf.random.uniform([b], 0.9, 1.1)  # output->input: >1 shows more of the frame (zoom out)
    tx = tf.random.uniform([b], -0.08, 0.08) * w
    ty = tf.random.uniform([b], -0.08, 0.08) * h
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    a00, a01 = scale * tf.cos(theta) * flip, -scale * tf.sin(theta)
    a10, a11 = scale * tf.sin(theta) * flip, scale * tf.cos(theta)
    zeros = tf.zeros([b])
    transforms = tf.stack(
        [a00, a01, cx + tx - a00 * cx - a01 * cy, a10, a11, cy + ty - a10 * cx - a11 * cy, zeros, zeros], axis=1
    )
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform([b, 1, 1, 1], 0.75, 1.25)
    brightness = tf.random.uniform([b, 1, 1, 1], -0.15, 0.15) * 255.0
    x = tf.clip_by_value((x - mean) * contrast + mean + brightness, 0.0, 255.0)
    return random_erase(tf, camera_effects(tf, x, effects), erase)


def _dataset(
    tf,
    split: Split,
    batch: int,
    n_classes: int,
    training: bool,
    seed: int,
    augment: bool,
    erase: float = 0.0,
    effects: float = 0.0,
    weights: dict[int, float] | None = None,
    teachers: Teachers | None = None,
):
    """Batches of (float faces, targets[, per-face class weights]). With `teachers` the targets of training
    batches are the labels mixed with the teachers' probabilities on the same augmented faces (distillation)."""
    ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    if training:
        ds = ds.shuffle(len(split.y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)
    do_augment = training and augment
    table = tf.constant([weights[i] for i in range(n_classes)], tf.float32) if weights else None

    def to_xy(x, y):
        x = tf.cast(x, tf.float32)
        if do_augment:
            x = augment_batch(tf, x, erase, effects)
        target = tf.one_hot(y, n_classes)
        if teachers is not None and training:
            target = teachers.targets(tf, x, target)
        if table is None:
            return x, target
        return x, target, tf.gather(table, y)

    return ds.map(to_xy, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class Teachers:
    """Trained models whose averaged probabilities become soft targets for a student (knowledge distillation).

    Each teacher is a run folder (model.keras + train.json, e.g. RUNS/<spec> or a committed copy) whose labels
    include the student's; its softmax restricted to the student's labels and renormalised is its vote, and the
    votes are averaged (an ensemble). The teachers see the student's augmented faces, so the soft targets follow
    every warp, blur and occlusion the student is shown.
    """

    def __init__(self, dirs: list[Path], labels: tuple[str, ...], weight: float):
        import keras

        if not 0.0 < weight <= 1.0:
            raise UserError(f"distillation weight {weight} is outside (0, 1]; fix: pass --distill-weight 0.5 to 1")
        self.weight = weight
        self.records: list[dict] = []
        self._models, self._rows = [], []
        for d in dirs:
            d = Path(d)
            model_path, info_path = d / "model.keras", d / "train.json"
            if not model_path.is_file() or not info_path.is_file():
                raise UserError(
                    f"teacher {d} has no model.keras and train.json; fix: pass a finished run folder "
                    "(RUNS/<spec>) or a committed teacher (trainer/teachers/<name>)"
                )
            teacher_labels = [str(c) for c in json.loads(info_path.read_text())["labels"]]
            missing = [c for c in labels if c not in teacher_labels]
            if missing:
                raise UserError(
                    f"teacher {d} does not know {missing} (its labels: {teacher_labels}); "
                    "fix: use a teacher trained on these classes"
                )
            self._models.append(keras.models.load_model(str(model_path), compile=False))
            self._rows.append([teacher_labels.index(c) for c in labels])
            self.records.append({"path": str(d), "labels": teacher_labels, "sha256": sha256_file(model_path)})

    def targets(self, tf, x, hard):
        """(1 - weight) * hard labels + weight * the teachers' mean renormalised probabilities."""
        votes = []
        for model, rows in zip(self._models, self._rows, strict=True):
            p = tf.gather(model(x, training=False), rows, axis=1)
            votes.append(p / tf.maximum(tf.reduce_sum(p, axis=1, keepdims=True), 1e-7))
        soft = tf.add_n(votes) / float(len(votes))
        return (1.0 - self.weight) * hard + self.weight * soft


def lr_at(step: int, lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine annealing to 2% of `lr` at `total_steps` (the recipe's epochs).

    By steps only, so a run split into several time-limited invocations follows one schedule.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return float(lr * (0.02 + 0.98 * 0.5 * (1.0 + np.cos(np.pi * progress))))


def _budget_callback(keras, run_dir: Path, lr: float, warmup_epochs: int, epochs: int, steps: int, max_minutes: float):
    """The learning-rate schedule plus this invocation's time limit.

    A run longer than one sitting is split: after `max_minutes` the invocation stops at the end of an
    epoch, keeping its checkpoint (`backup/`), and the same command resumes at the next epoch of the
    same schedule. Minutes over all invocations are kept in budget.json.
    """
    state = run_dir / "budget.json"

    class Budget(keras.callbacks.Callback):
        chunk_stopped = False

        def on_train_begin(self, logs=None):
            self.prior = json.loads(state.read_text())["seconds"] if state.is_file() else 0.0
            self.t0 = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            value = lr_at(self.epoch * steps + batch, lr, warmup_epochs * steps, epochs * steps)
            self.model.optimizer.learning_rate.assign(value)

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.monotonic() - self.t0
            state.write_text(json.dumps({"seconds": round(self.prior + elapsed, 1)}))
            if logs is not None:
                logs["lr"] = float(self.model.optimizer.learning_rate.numpy())
            if elapsed / 60.0 > max_minutes and epoch + 1 < epochs:
                log.warning(
                    "time limit of %.0f min reached after epoch %d of %d; stopping with a checkpoint "
                    "(run the same command again to continue)",
                    max_minutes,
                    epoch + 1,
                    epochs,
                )
                self.chunk_stopped = True
                self.model.stop_training = True

    return Budget()


def read_history(run_dir: Path | None) -> list[dict[str, float]]:
    """The run's per-epoch curves (CSVLogger's history.csv, every sitting appended): [] when there is none."""
    path = Path(run_dir) / "history.csv" if run_dir else None
    if not path or not path.is_file():
        return []
    import csv

    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _resumable_callbacks(keras, run_dir: Path, patience: int):
    """Checkpoint-best and early stopping that remember earlier invocations of the same run (from history.csv):
    a resumed run neither overwrites a better best.keras nor restarts its patience."""
    past = read_history(run_dir)
    best_i = int(np.argmax([r["val_accuracy"] for r in past])) if past else -1
    best = past[best_i]["val_accuracy"] if past else None

    class Stop(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if best is not None:
                self.best, self.wait = best, len(past) - 1 - best_i

    checkpoint = keras.callbacks.ModelCheckpoint(
        str(run_dir / "best.keras"), monitor="val_accuracy", save_best_only=True, initial_value_threshold=best
    )
    return checkpoint, Stop(monitor="val_accuracy", patience=patience, restore_best_weights=True)


def build_model(spec: ModelSpec, backbone: str, backbone_weights: Path | None, input_shape):
    """The spec's Keras model, with the pre-trained backbone loaded for resnet specs."""
    from .archs import resnet, scratch

    r = spec.recipe
    if spec.arch == "scratch":
        return scratch.build(len(spec.labels), input_shape, r.width, r.dropout, r.weight_decay)
    net = resnet.build_backbone(backbone, input_shape, r.width, r.weight_decay, backbone_weights)
    return resnet.build(len(spec.labels), net, r.dropout)


def save_head(model, run_dir: Path, labels: tuple[str, ...]) -> Path:
    """Keep the pre-trained classifier's softmax layer (kernel, bias, labels) next to the backbone weights."""
    kernel, bias = model.get_layer("softmax").get_weights()
    path = run_dir / HEAD_FILE
    np.savez(path, kernel=kernel, bias=bias, labels=np.array(labels))
    return path


def init_head_from_pretrain(model, pretrain_dir: Path, labels: tuple[str, ...]) -> bool:
    """Copy the pre-trained classifier's softmax rows for `labels` into `model`'s head.

    Pre-training (six classes) keeps its softmax layer next to the backbone weights; that softmax
    restricted to a subset of its classes is already a classifier for the subset, so a fine-tune
    starts from it instead of a random head. False (and a warning) when it is missing or lacks a class.
    """
    path = pretrain_dir / HEAD_FILE
    if not path.is_file():
        log.warning("no pre-trained head %s: the head starts from random weights", path)
        return False
    with np.load(path, allow_pickle=False) as z:
        kernel, bias, pre_labels = z["kernel"], z["bias"], [str(c) for c in z["labels"]]
    missing = [c for c in labels if c not in pre_labels]
    if missing:
        log.warning("pre-training did not see %s: the head starts from random weights", missing)
        return False
    rows = [pre_labels.index(c) for c in labels]
    model.get_layer("softmax").set_weights([kernel[:, rows], bias[rows]])
    log.info("head initialised from the pre-trained classifier's %s rows", list(labels))
    return True


def train(
    spec: ModelSpec,
    data: DataOptions,
    run_dir: str | Path,
    preprocess: PreprocessSpec,
    backbone: str = "fer-resnet",
    backbone_weights: Path | None = None,
    verbose: int | None = None,
    teachers: list[Path] | None = None,
) -> dict:
    """Train (or resume) `spec`; writes model.keras, history.csv, train.json and, for pre-training, the backbone.
    With `teachers` (run folders) the training targets mix the labels with the teachers' probabilities."""
    import keras
    import tensorflow as tf

    r = spec.recipe
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # checked before anything in run_dir changes: a wrong --teacher must not cost a finished run its records
    distill = Teachers(teachers, spec.labels, r.distill_weight) if teachers else None
    resuming = (run_dir / "backup").exists()
    first = json.loads((run_dir / "train.json").read_text()) if resuming and (run_dir / "train.json").is_file() else {}
    if resuming:
        _check_same_teachers(first, distill, run_dir)
    else:  # a fresh run, not a resume: drop the old curves and checkpoint
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
    if resuming:  # the checkpoint restores the weights; the head's start is what the first sitting recorded
        head_init = bool(first.get("head_from_pretrain", False))
    else:
        head_init = bool(
            spec.arch == "resnet"
            and r.head_from_pretrain
            and backbone == "fer-resnet"
            and backbone_weights is not None
            and init_head_from_pretrain(model, Path(backbone_weights).parent, spec.labels)
        )
    steps = int(np.ceil(len(tr.y) / r.batch_size))
    # Linear warm-up (in the budget callback) shields pre-trained backbone weights from the new head's first gradients.
    model.compile(
        optimizer=keras.optimizers.AdamW(r.learning_rate, weight_decay=r.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
        metrics=["accuracy"],
    )
    budget = _budget_callback(keras, run_dir, r.learning_rate, r.warmup_epochs, r.epochs, steps, r.max_minutes)
    callbacks = [
        # resume after an interruption or a time limit; deleted below only when the run is complete
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        *_resumable_callbacks(keras, run_dir, r.patience),
        budget,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    t0 = time.monotonic()
    hist = model.fit(
        _dataset(
            tf,
            tr,
            r.batch_size,
            len(spec.labels),
            True,
            r.seed,
            r.augment,
            r.random_erasing,
            r.camera_effects,
            # per-face weights from the hard label (Keras's class_weight would read them off soft targets)
            weights=class_weights(tr.y, len(spec.labels)) if r.class_weighting else None,
            teachers=distill,
        ),
        validation_data=_dataset(tf, va, r.batch_size, len(spec.labels), False, r.seed, False),
        epochs=r.epochs,
        callbacks=callbacks,
        verbose=verbose if verbose is not None else (1 if sys.stderr.isatty() else 2),
    )
    seconds = time.monotonic() - t0
    complete = not budget.chunk_stopped
    if complete:
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    if (run_dir / "best.keras").is_file():
        model.load_weights(str(run_dir / "best.keras"))
    model.save(str(run_dir / "model.keras"))
    if spec.class_set == "fer6":
        backbone_model = keras.Model(model.input, model.get_layer("gap").output, name="backbone")
        backbone_model.save_weights(str(run_dir / BACKBONE_FILE))
        save_head(model, run_dir, spec.labels)
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
        "head_from_pretrain": head_init,
        "teachers": distill.records if distill else [],
        "params": int(model.count_params()),
        "preprocess": preprocess.to_dict(),
        "train_counts": tr.counts(),
        "val_counts": va.counts(),
        "skipped": {"train": tr.skipped, "val": va.skipped},
        "complete": complete,  # false: stopped by --max-minutes; the same command continues it
        "epochs_run": len(read_history(run_dir)),
        "epochs_this_run": len(hist.history.get("loss", [])),
        "seconds_this_run": round(seconds, 1),
        "minutes_total": round(json.loads((run_dir / "budget.json").read_text())["seconds"] / 60.0, 1)
        if (run_dir / "budget.json").is_file()
        else None,
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


def _check_same_teachers(first: dict, distill: Teachers | None, run_dir: Path) -> None:
    """A run continues with the teachers it started with (their model files' sha256), or not at all."""
    before = [t["sha256"] for t in first.get("teachers", [])]
    now = [t["sha256"] for t in distill.records] if distill else []
    if before != now:
        started = ", ".join(t["path"] for t in first["teachers"]) if before else "no teacher"
        raise UserError(
            f"{run_dir} was started with {started}; fix: continue it with the same --teacher folders, "
            f"or delete {run_dir / 'backup'} to start over"
        )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def require_backbone(path: Path) -> Path:
    if not path.is_file():
        raise UserError(
            f"backbone weights {path} not found; fix: run 'emotion-trainer pretrain' first, or fine-tune from the "
            f"committed pre-training with --backbone-weights {_shown(PRETRAINED / BACKBONE_FILE)}"
        )
    return path
