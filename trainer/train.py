"""Train one spec: augmentation, class weighting, early stopping on val, checkpoints, resume, time limit."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.core.errors import UserError
from edge.core.manifest import sha256_file
from edge.core.preprocess import PreprocessSpec

from .augment import augment_batch
from .dataset import DataOptions, Split
from .refit import joined, training_part
from .specs import ModelSpec, Recipe, recipe_differences

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


def _replicated_grey(x: np.ndarray, chunk: int = 1024) -> bool:
    """Whether every face of an NHWC array has all its channels equal (checked a chunk at a time)."""
    if x.ndim != 4 or x.shape[3] < 2:
        return False
    return all(bool((x[i : i + chunk] == x[i : i + chunk, :, :, :1]).all()) for i in range(0, len(x), chunk))


class FaceBatches:
    """Batch `i` of epoch `e`: (float faces, targets[, per-face class weights]), a pure function of (i, e).

    Training batches are reshuffled every epoch and augmented (trainer/augment.py) with a generator seeded by
    (seed, epoch, batch), so a batch does not depend on which thread makes it, or when. With `teachers` the
    targets of training batches are the labels mixed with the teachers' probabilities on the same augmented
    faces (distillation). With `mixup` > 0 every training face is blended with another face of its batch (its own
    generator, seeded by (seed, epoch, batch, 1)), and its targets and class weight with that face's, the teachers
    asked about the blended face.
    """

    def __init__(
        self,
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
        one_channel: bool = True,
        camera_range: str = "mild",
        mixup: float = 0.0,
    ):
        self.split, self.batch, self.n_classes, self.training, self.seed = split, batch, n_classes, training, seed
        self.augment, self.erase, self.effects, self.teachers = training and augment, erase, effects, teachers
        self.camera_range, self.mixup = camera_range, mixup
        self.table = np.array([weights[i] for i in range(n_classes)], np.float32) if weights else None
        # grey faces (the preprocessing replicates one grey channel): augment one channel, replicate after;
        # one_channel=False keeps the three-channel path (for comparison: bench-batches --three-channel)
        self.grey = self.augment and one_channel and _replicated_grey(split.x)

    def __len__(self) -> int:
        return int(np.ceil(len(self.split.y) / self.batch))

    def get(self, i: int, epoch: int) -> tuple[np.ndarray, ...]:
        n = len(self.split.y)
        order = np.random.default_rng((self.seed, epoch)).permutation(n) if self.training else np.arange(n)
        idx = order[i * self.batch : (i + 1) * self.batch]
        y = self.split.y[idx]
        if self.augment:
            faces = self.split.x[idx, :, :, :1] if self.grey else self.split.x[idx]
            x = augment_batch(
                faces.astype(np.float32),
                np.random.default_rng((self.seed, epoch, i)),
                self.erase,
                self.effects,
                self.camera_range,
            )
            if self.grey:
                x = np.repeat(x, self.split.x.shape[3], axis=3)
        else:
            x = self.split.x[idx].astype(np.float32)
        target = np.eye(self.n_classes, dtype=np.float32)[y]
        weight = None if self.table is None else self.table[y]
        if self.mixup > 0.0 and self.training:
            x, target, weight = mix(x, target, weight, self.mixup, np.random.default_rng((self.seed, epoch, i, 1)))
        if self.teachers is not None and self.training:
            target = self.teachers.targets(x, target)
        return (x, target) if weight is None else (x, target, weight)


def mix(
    x: np.ndarray, target: np.ndarray, weight: np.ndarray | None, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mixup: face j becomes l_j x_j + (1 - l_j) x_p(j) for a permutation p of the batch and l_j ~ Beta(alpha,
    alpha); its target and class weight are blended with the same l_j."""
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    partner = rng.permutation(len(x))
    shape = (-1,) + (1,) * (x.ndim - 1)
    mixed = lam.reshape(shape) * x + (1.0 - lam.reshape(shape)) * x[partner]
    t = lam[:, None] * target + (1.0 - lam[:, None]) * target[partner]
    w = None if weight is None else lam * weight + (1.0 - lam) * weight[partner]
    return mixed.astype(np.float32), t.astype(np.float32), w


def training_faces(
    spec: ModelSpec, split: Split, teachers: Teachers | None = None, one_channel: bool = True
) -> FaceBatches:
    """The training batches of `spec`'s recipe: shuffled, augmented, class-weighted, distilled from `teachers`."""
    r = spec.recipe
    return FaceBatches(
        split,
        r.batch_size,
        len(spec.labels),
        True,
        r.seed,
        r.augment,
        r.random_erasing,
        r.camera_effects,
        # per-face weights from the hard label (Keras's class_weight would read them off soft targets)
        weights=class_weights(split.y, len(spec.labels)) if r.class_weighting else None,
        teachers=teachers,
        one_channel=one_channel,
        camera_range=r.camera_range,
        mixup=r.mixup,
    )


def bench_batches(split: Split, spec: ModelSpec, n: int, threads: int = 1, one_channel: bool = True) -> dict:
    """Time `n` training batches of `spec`'s recipe made by `threads` threads at once (no teachers, no model)."""
    from concurrent.futures import ThreadPoolExecutor

    faces = training_faces(spec, split, one_channel=one_channel)
    jobs = [(i % len(faces), i // len(faces)) for i in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda job: faces.get(*job), jobs):
            pass
    seconds = time.perf_counter() - t0
    return {"batches": n, "one_channel": faces.grey, "ms_per_batch": 1000.0 * seconds / n, "batches_per_s": n / seconds}


def batches(keras, faces: FaceBatches, workers: int = 1):
    """`faces` as Keras's backend reads input best: a tf.data pipeline under TensorFlow (Keras's PyDataset
    adapter there made CPU training steps ~2x slower), a PyDataset of worker threads under JAX or torch."""
    if keras.backend.backend() == "tensorflow":
        import itertools

        import tensorflow as tf

        calls, n = itertools.count(), len(faces)

        def get(i):  # an epoch's n batches are all asked for before the next epoch's iterator exists
            return faces.get(int(i), next(calls) // n)

        weighted = faces.table is not None
        shapes = [(None, *faces.split.x.shape[1:]), (None, faces.n_classes)] + ([(None,)] if weighted else [])

        def typed(*tensors):
            return tuple(tf.ensure_shape(t, s) for t, s in zip(tensors, shapes, strict=True))

        out = [tf.float32] * len(shapes)
        ds = tf.data.Dataset.range(n).map(
            lambda i: typed(*tf.numpy_function(get, [i], out)), num_parallel_calls=workers, deterministic=True
        )
        # fixed parallelism and buffer, so no autotuning: its thread sleeps ever longer between rounds, and Keras
        # dropping an epoch's iterator waited for it to wake (45 s of zero CPU at some epoch starts on a 2-core host)
        options = tf.data.Options()
        options.autotune.enabled = False
        return ds.prefetch(2).with_options(options)

    class Faces(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(10, 2 * workers))
            self.epoch = 0

        def __len__(self) -> int:
            return len(faces)

        def __getitem__(self, i: int):
            return faces.get(i, self.epoch)

        def on_epoch_end(self):
            self.epoch += 1

    return Faces()


TEACHER_MODELS = ("model.keras", "model.int8.tflite")


def teacher_model(folder: Path) -> Path | None:
    """The model file of a teacher folder: its model.keras, else its model.int8.tflite; None if it has neither."""
    return next((folder / n for n in TEACHER_MODELS if (folder / n).is_file()), None)


class _TfliteTeacher:
    """An exported teacher through the TFLite interpreter: float faces (0..255) in, softmax probabilities out.

    Batch workers call it at once, so each thread has its own runner (edge.core.runtime.BatchRunner: an
    interpreter per batch size, faces quantised to the model's input as the device does)."""

    def __init__(self, path: Path):
        from edge.core.runtime import make_interpreter

        self.path = path
        make_interpreter(path)  # a corrupt file fails here, not in a worker
        self._local = threading.local()

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        from edge.core.runtime import BatchRunner

        runner = self._local.__dict__.get("runner")
        if runner is None:
            runner = self._local.runner = BatchRunner(self.path)
        return runner.run(x)


class Teachers:
    """Trained models whose averaged probabilities become soft targets for a student (knowledge distillation).

    Each teacher is a run folder (train.json and its model, e.g. RUNS/<spec> or a committed copy) whose labels
    include the student's; its softmax restricted to the student's labels and renormalised is its vote, and the
    votes are averaged (an ensemble). The teachers see the student's augmented faces, so the soft targets follow
    every warp, blur and occlusion the student is shown. The model is the run's `model.keras`, or, where the folder
    holds `model.int8.tflite` instead (the run's int8 export, as the device runs it), that file through the TFLite
    interpreter: a quarter of the CPU time of the Keras model and a quarter of its size in git.
    """

    def __init__(self, dirs: list[Path], labels: tuple[str, ...], weight: float):
        import keras

        if not 0.0 < weight <= 1.0:
            raise UserError(f"distillation weight {weight} is outside (0, 1]; fix: pass --distill-weight 0.5 to 1")
        self.weight = weight
        self._lock = threading.Lock()  # batches are made by worker threads
        self.records: list[dict] = []
        self._models, self._rows = [], []
        for d in dirs:
            d = Path(d)
            model_path, info_path = teacher_model(d), d / "train.json"
            if model_path is None or not info_path.is_file():
                raise UserError(
                    f"teacher {d} has no train.json and model ({' or '.join(TEACHER_MODELS)}); fix: pass a "
                    "finished run folder (RUNS/<spec>) or a committed teacher (trainer/teachers/<name>)"
                )
            teacher_labels = [str(c) for c in json.loads(info_path.read_text())["labels"]]
            missing = [c for c in labels if c not in teacher_labels]
            if missing:
                raise UserError(
                    f"teacher {d} does not know {missing} (its labels: {teacher_labels}); "
                    "fix: use a teacher trained on these classes"
                )
            if model_path.suffix == ".tflite":
                model = _TfliteTeacher(model_path)
            else:
                model = keras.models.load_model(str(model_path), compile=False)
                model.predict_on_batch(np.zeros((1, *model.input_shape[1:]), np.float32))  # built here, not in a worker
            self._models.append(model)
            self._rows.append([teacher_labels.index(c) for c in labels])
            self.records.append({"path": str(d), "labels": teacher_labels, "sha256": sha256_file(model_path)})

    def targets(self, x: np.ndarray, hard: np.ndarray) -> np.ndarray:
        """(1 - weight) * hard labels + weight * the teachers' mean renormalised probabilities."""
        votes = []
        for model, rows in zip(self._models, self._rows, strict=True):
            if isinstance(model, _TfliteTeacher):
                p = model.probabilities(x)[:, rows]  # an interpreter per thread: no lock
            else:
                with self._lock:  # one call at a time: JAX's predict function hands its state buffers on
                    p = np.asarray(model.predict_on_batch(x), np.float32)[:, rows]
            votes.append(p / np.maximum(p.sum(axis=1, keepdims=True), 1e-7))
        return (1.0 - self.weight) * hard + self.weight * (sum(votes) / float(len(votes)))


def lr_at(step: int, lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine annealing to 2% of `lr` at `total_steps` (the recipe's epochs).

    By steps only, so a run split into several time-limited invocations follows one schedule.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return float(lr * (0.02 + 0.98 * 0.5 * (1.0 + np.cos(np.pi * progress))))


def optimizer(keras, r):
    """The recipe's optimizer at its peak rate (the budget callback sets the rate of every step)."""
    if r.optimizer == "sgd":
        return keras.optimizers.SGD(r.learning_rate, momentum=0.9, nesterov=True)
    return keras.optimizers.AdamW(r.learning_rate, weight_decay=r.weight_decay)


def _budget_callback(
    keras,
    run_dir: Path,
    lr: float,
    warmup_epochs: int,
    epochs: int,
    steps: int,
    max_minutes: float,
    last_epoch: int | None = None,
):
    """The learning-rate schedule (over `epochs`) plus this invocation's time limit; training ends after
    `last_epoch` (default `epochs`: a refit stops earlier in the same schedule).

    A run longer than one sitting is split: after `max_minutes` the invocation stops at the end of an
    epoch, keeping its checkpoint (`backup/`), and the same command resumes at the next epoch of the
    same schedule. Minutes over all invocations are kept in budget.json.
    """
    state = run_dir / "budget.json"

    class Budget(keras.callbacks.Callback):
        chunk_stopped = False

        def on_train_begin(self, logs=None):
            self.prior = prior_seconds(run_dir)
            self.t0 = time.monotonic()
            self.timed = history_takes_seconds(run_dir)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_t0 = time.monotonic()

        def on_train_batch_begin(self, batch, logs=None):
            value = lr_at(self.epoch * steps + batch, lr, warmup_epochs * steps, epochs * steps)
            self.model.optimizer.learning_rate.assign(value)

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.monotonic() - self.t0
            write_json(state, {"seconds": round(self.prior + elapsed, 1)})
            if logs is not None:
                logs["lr"] = float(self.model.optimizer.learning_rate.numpy())
                if self.timed:  # the epoch's wall-clock seconds, its val pass included (CSVLogger writes it)
                    logs["seconds"] = round(time.monotonic() - self.epoch_t0, 1)
            if elapsed / 60.0 > max_minutes and epoch + 1 < (last_epoch or epochs):
                log.warning(
                    "time limit of %.0f min reached after epoch %d of %d; stopping with a checkpoint "
                    "(run the same command again to continue)",
                    max_minutes,
                    epoch + 1,
                    last_epoch or epochs,
                )
                self.chunk_stopped = True
                self.model.stop_training = True

    return Budget()


def history_takes_seconds(run_dir: Path) -> bool:
    """Whether history.csv gets a `seconds` column: a new run's does; a run resumed from a history written before
    the column existed keeps its own header (CSVLogger appends rows under it, so one more key would shift them)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return True
    with path.open() as f:
        header = f.readline().strip()
    return not header or "seconds" in header.split(",")


def prior_seconds(run_dir: Path) -> float:
    """Seconds the run trained in earlier sittings (budget.json; 0 for none)."""
    state = run_dir / "budget.json"
    try:
        return float(json.loads(state.read_text())["seconds"]) if state.is_file() else 0.0
    except (ValueError, KeyError, TypeError):  # damaged: this code writes it whole (write_json)
        raise UserError(
            f"{state} is unreadable, so the minutes of earlier sittings are unknown; fix: delete it to go on "
            "(those minutes are then not counted in minutes_total)"
        ) from None


def read_history(run_dir: Path | None) -> list[dict[str, float]]:
    """The run's per-epoch curves (CSVLogger's history.csv, every sitting appended): [] when there is none.
    Columns Keras fills with "NA" (the val_ ones of a run without validation, as a refit is) are left out."""
    path = Path(run_dir) / "history.csv" if run_dir else None
    if not path or not path.is_file():
        return []
    import csv

    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", "NA")} for row in csv.DictReader(f)]


def _resumable_callbacks(keras, run_dir: Path, patience: int, epochs: int, stop_from: float):
    """Checkpoint-best and early stopping that remember earlier invocations of the same run (from history.csv):
    a resumed run neither overwrites a better best.keras nor restarts its patience.

    Early stopping watches only the schedule from `stop_from` on (the recipe's; by default its second half): while
    the learning rate is still high, val accuracy wanders by several points from epoch to epoch (runs of 50 epochs
    stopped at epoch 9 and 14 of their warm, high-rate phase; a 60-epoch one watched from epoch 30 stopped at 40 with
    the rate at a quarter of its peak), and the checkpoint keeps the best epoch anyway."""
    past = read_history(run_dir)
    best = max(r["val_accuracy"] for r in past) if past else None
    start = int(epochs * stop_from)
    watched = [r["val_accuracy"] for r in past[start:]]  # what early stopping has seen so far

    class Stop(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if watched:
                self.best, self.wait = max(watched), len(watched) - 1 - int(np.argmax(watched))

    checkpoint = keras.callbacks.ModelCheckpoint(
        str(run_dir / "best.keras"), monitor="val_accuracy", save_best_only=True, initial_value_threshold=best
    )
    stop = Stop(monitor="val_accuracy", patience=patience, restore_best_weights=True, start_from_epoch=start)
    return checkpoint, stop


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
    refit: dict | None = None,
) -> dict:
    """Train (or resume) `spec`; writes model.keras, history.csv, train.json and, for pre-training, the backbone.
    With `teachers` (run folders) the training targets mix the labels with the teachers' probabilities. With
    `refit` (trainer/refit.py: record) val joins the training faces, nothing is validated or early-stopped, and
    training stops after refit["epochs"] epochs of the recipe's schedule."""
    import keras

    r = spec.recipe
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # checked before anything in run_dir changes: a wrong --teacher must not cost a finished run its records
    distill = Teachers(teachers, spec.labels, r.distill_weight) if teachers else None
    resuming = (run_dir / "backup").exists()
    first = json.loads((run_dir / "train.json").read_text()) if resuming and (run_dir / "train.json").is_file() else {}
    if resuming:
        _check_same_teachers(first, distill, run_dir)
        _check_same_recipe(first, r, run_dir)
        if training_part(first.get("refit")) != training_part(refit):
            raise UserError(
                f"{run_dir} holds an interrupted run of another kind (refit or not, or of another selection); "
                "fix: resume it with its own command, or pass another --runs"
            )
        _check_backup(run_dir / "backup")
        prior_seconds(run_dir)  # readable before anything starts
    else:  # a fresh run, not a resume: drop the old curves and checkpoint
        for stale in ("history.csv", "best.keras", "train.json", "budget.json"):
            (run_dir / stale).unlink(missing_ok=True)
    keras.utils.set_random_seed(r.seed)
    backend = accelerator(keras)
    log.info("training %s with Keras %s on %s", spec.name, backend["backend"], backend["device"])
    data = replace(data, per_class_limit=r.per_class_limit)  # the recipe's limit (smoke runs), recorded with it
    tr = data.load("train", spec.labels, preprocess)
    va = data.load("val", spec.labels, preprocess)
    log.info("train %s | val %s", tr.counts(), va.counts())
    if refit is not None:
        tr = joined(tr, va)  # val is training data from here on: nothing below may choose on it
        log.info("refit on train + val %s, stopping after epoch %d of %d", tr.counts(), refit["epochs"], r.epochs)
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
    if not resuming:  # what a resume must agree with, on disk before the first checkpoint (a kill can come next)
        start = {"teachers": distill.records if distill else [], "head_from_pretrain": head_init}
        start |= {"refit": refit} if refit is not None else {}
        _write_info(run_dir, _started(spec, backbone, backbone_weights, preprocess, data) | start)
    steps = int(np.ceil(len(tr.y) / r.batch_size))
    # Linear warm-up (in the budget callback) shields pre-trained backbone weights from the new head's first gradients.
    model.compile(
        optimizer=optimizer(keras, r),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.label_smoothing),
        metrics=["accuracy"],
    )
    last = refit["epochs"] if refit is not None else r.epochs
    budget = _budget_callback(
        keras, run_dir, r.learning_rate, r.warmup_epochs, r.epochs, steps, r.max_minutes, last_epoch=last
    )

    def val_batches():  # a fresh pipeline for fit and for the final evaluation, as before refits existed
        return batches(keras, FaceBatches(va, r.batch_size, len(spec.labels), False, r.seed, False))

    callbacks = [
        # resume after an interruption or a time limit; deleted below only when the run is complete
        # double_checkpoint: the previous epoch's checkpoint is kept and used if the latest was cut mid-write
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False, double_checkpoint=True),
        *(_resumable_callbacks(keras, run_dir, r.patience, r.epochs, r.stop_from) if refit is None else ()),
        budget,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    t0 = time.monotonic()
    hist = model.fit(
        batches(keras, training_faces(spec, tr, distill), workers=_workers()),
        validation_data=val_batches() if refit is None else None,
        epochs=last,
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
    # a refit has seen val: its val numbers would say nothing, so none are kept
    val_loss, val_acc = model.evaluate(val_batches(), verbose=0) if refit is None else (None, None)
    info = _started(spec, backbone, backbone_weights, preprocess, data) | {
        "head_from_pretrain": head_init,
        **({"refit": refit} if refit is not None else {}),
        "teachers": distill.records if distill else [],
        "params": int(model.count_params()),
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
        "best_val_accuracy": round(float(val_acc), 4) if val_acc is not None else None,
        "val_loss": round(float(val_loss), 4) if val_loss is not None else None,
        **backend,
    }
    _write_info(run_dir, info)
    log.info(
        "%s: val accuracy %s after %d epochs (%.0f s)",
        spec.name,
        info["best_val_accuracy"],
        info["epochs_run"],
        seconds,
    )
    return info


def _started(spec: ModelSpec, backbone: str, backbone_weights: Path | None, preprocess: PreprocessSpec, data) -> dict:
    """The part of train.json known before the first epoch; 'complete' stays false until a sitting ends."""
    return {
        "spec": spec.name,
        "labels": list(spec.labels),
        "arch": spec.arch,
        "recipe": spec.recipe.to_dict(),
        "backbone": backbone if spec.arch == "resnet" else None,
        "backbone_weights": str(backbone_weights) if backbone_weights else None,
        "preprocess": preprocess.to_dict(),
        "complete": False,
        "data": str(Path(data.root).resolve()),
        "faces": data.faces,
        "command": " ".join(["emotion-trainer", *sys.argv[1:]]),  # the same for `python -m trainer`
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: Path, obj: dict) -> None:
    """Whole or not at all: a run killed mid-write (SIGKILL, power cut) leaves the previous file, never a cut one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def _write_info(run_dir: Path, info: dict) -> None:
    write_json(run_dir / "train.json", info)


def accelerator(keras) -> dict[str, str]:
    """Which Keras backend trains and on what: recorded in train.json ('backend', its version, 'device')."""
    name = keras.backend.backend()
    cpu = f"CPU ({platform.processor() or platform.machine()})"
    if name == "jax":
        import jax

        d = jax.devices()[0]
        device = cpu if d.platform == "cpu" else f"GPU {d.device_kind}"
        return {"backend": name, name: jax.__version__, "device": device}
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return {"backend": name, name: tf.__version__, "device": f"GPU {gpus[0].name}" if gpus else cpu}
    return {"backend": name, "device": cpu}


def _workers() -> int:
    """Threads that augment training batches (OpenCV releases the GIL): one per core, at most 12."""
    import os

    return max(1, min(12, len(os.sched_getaffinity(0))))


def _check_backup(backup: Path) -> None:
    """A checkpoint cut while being written (power cut, kill -9) is a one-line error, not a traceback from
    inside Keras; with an earlier epoch's copy (`*.bkp`) beside it, Keras resumes from that one instead."""
    import h5py

    latest = backup / "latest.weights.h5"

    def readable(path: Path) -> bool:
        try:
            with h5py.File(path, "r"):
                return True
        except OSError:
            return False

    if latest.is_file() and not readable(latest) and not readable(Path(f"{latest}.bkp")):
        raise UserError(
            f"the checkpoint {latest} is unreadable (cut while being written?); "
            f"fix: delete {backup} to start the run over"
        )


def _check_same_teachers(first: dict, distill: Teachers | None, run_dir: Path) -> None:
    """A run continues with the teachers it started with (their model files' sha256), or not at all."""
    if "teachers" not in first:  # no start record (a run begun before records were written at its start)
        log.warning("%s has no record of its teachers; continuing with the ones given", run_dir)
        return
    before = [t["sha256"] for t in first["teachers"]]
    now = [t["sha256"] for t in distill.records] if distill else []
    if before != now:
        started = ", ".join(t["path"] for t in first["teachers"]) if before else "no teacher"
        raise UserError(
            f"{run_dir} was started with {started}; fix: continue it with the same --teacher folders, "
            f"or delete {run_dir / 'backup'} to start over"
        )


def _check_same_recipe(first: dict, recipe: Recipe, run_dir: Path) -> None:
    """A run continues with the recipe it started with (time limit aside): its checkpoint holds a network of that
    width and that optimizer's state, and its curve so far came from that schedule, seed and augmentation.
    `--epochs` may change, which stretches or shortens the schedule from the next epoch on (logged)."""
    if "recipe" not in first:  # no start record (a run begun before records were written at its start)
        return
    differ = recipe_differences(first["recipe"], recipe, ignore=("max_minutes", "epochs"))
    if differ:
        # a field a recipe does not record (camera_range, stop_from, mixup, optimizer) is at its default
        was = ", ".join(f"{k} {first['recipe'].get(k, getattr(Recipe(), k, None))}" for k in differ)
        raise UserError(
            f"{run_dir} was started with {was}; fix: continue it with its own command (train.json: "
            f"{first.get('command', '?')}), or delete {run_dir / 'backup'} to start over"
        )
    if first["recipe"].get("epochs") != recipe.epochs:
        log.warning(
            "%s was started with %s epochs and continues with %d: the schedule changes from the next epoch on",
            run_dir,
            first["recipe"].get("epochs"),
            recipe.epochs,
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
