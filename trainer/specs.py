"""The six model specs (class set x architecture) and the training recipe each one uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from edge.core.errors import UserError

CLASS_SETS: dict[str, tuple[str, ...]] = {
    "binary": ("happy", "sad"),
    "multiclass3": ("happy", "sad", "surprise"),
    "multiclass4": ("happy", "sad", "surprise", "neutral"),
}
# The wider FER2013 classes the shared ResNet backbone is pre-trained on (disgust is too rare to help).
PRETRAIN_CLASSES: tuple[str, ...] = ("angry", "fear", "happy", "neutral", "sad", "surprise")
ARCHS = ("scratch", "resnet")
OPTIMIZERS = ("adamw", "sgd")
SGD_LR_SCALE = 10.0  # SGD's peak learning rate against AdamW's in the same spec (1e-3 -> 1e-2 for the resnets)
PRODUCTION_MODEL = "multiclass4-resnet"


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters. Defaults are the full CPU schedule; --smoke shrinks them."""

    batch_size: int = 64  # the thesis's batch
    epochs: int = 40
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.5  # the thesis's dropout before the classifier
    label_smoothing: float = 0.05
    patience: int = 8  # early stopping on val accuracy
    # early stopping watches val from this fraction of the schedule on (1.0: it never stops a run; the best epoch is
    # kept either way): while the learning rate is high, val wanders by points from epoch to epoch
    stop_from: float = 0.5
    warmup_epochs: int = 1  # linear learning-rate warm-up before cosine annealing
    max_minutes: float = 55.0  # this invocation's limit: stop with a checkpoint; the same command continues
    width: int = 32  # channels of the first stage; later stages double it
    per_class_limit: int = 0  # 0 = all images; smoke runs cap it
    augment: bool = True
    random_erasing: float = 0.5  # probability of blanking one random rectangle (occlusion: hands, glasses, masks)
    camera_effects: float = 0.3  # probability of each of blur, sensor noise and JPEG re-compression per face
    camera_range: str = "mild"  # how far they go: trainer/augment.py CAMERA_RANGES ("wide" adds small faces)
    # mixup: each training face blended with another of its batch, x = l a + (1 - l) b with l ~ Beta(mixup, mixup)
    # per face, the labels and class weights blended alike and the teachers asked about the blend; 0 = off
    mixup: float = 0.0
    # resnet fine-tunes: start the classifier from the pre-trained six-class head's rows for this spec's classes
    # (its softmax restricted to them), not from random weights, so fine-tuning starts where pre-training ended.
    head_from_pretrain: bool = False
    # with --teacher: training targets = (1 - w) * labels + w * the teachers' mean probabilities (distillation)
    distill_weight: float = 0.7
    class_weighting: bool = True
    seed: int = 1234
    # "adamw" (decoupled weight decay) or "sgd" (Nesterov momentum 0.9, no decoupled decay: the layers' L2 penalty
    # stays); `--optimizer sgd` also sets learning_rate to SGD_LR_SCALE times the spec's unless --learning-rate is
    # given (trainer/__main__.py: _spec_with)
    optimizer: str = "adamw"

    def __post_init__(self) -> None:
        from .augment import CAMERA_RANGES

        if self.camera_range not in CAMERA_RANGES:
            raise UserError(f"camera_range {self.camera_range!r} is not one of {sorted(CAMERA_RANGES)}")
        if not 0.0 <= self.stop_from <= 1.0:
            raise UserError(f"stop_from {self.stop_from} is not a fraction of the schedule; fix: give 0 to 1")
        if not self.mixup >= 0.0:
            raise UserError(f"mixup {self.mixup} is not a Beta parameter; fix: give 0 (off) or more, e.g. 0.2")
        if not self.learning_rate > 0.0:
            raise UserError(f"learning rate {self.learning_rate} is not above 0; fix: give a peak rate, e.g. 0.001")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")

    def to_dict(self) -> dict:
        """As runs record it; camera_range only when not "mild", stop_from only when not 0.5, mixup only when on and
        optimizer only when not "adamw", so the recipes recorded before them still match."""
        d = asdict(self)
        if self.camera_range == "mild":
            del d["camera_range"]
        if self.stop_from == 0.5:
            del d["stop_from"]
        if self.mixup == 0.0:
            del d["mixup"]
        if self.optimizer == "adamw":
            del d["optimizer"]
        return d


def recipe_differences(recorded: dict, recipe: Recipe, ignore: tuple[str, ...] = ("max_minutes",)) -> list[str]:
    """The recipe fields in which `recipe` differs from a recorded one (train.json's, a manifest's), `ignore`d
    fields aside (by default the time limit, which is per invocation)."""
    rebuilt = recipe.to_dict()
    return sorted(k for k in set(recorded) | set(rebuilt) if k not in ignore and recorded.get(k) != rebuilt.get(k))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    class_set: str
    arch: str
    labels: tuple[str, ...]
    recipe: Recipe = field(default_factory=Recipe)


def spec_names() -> list[str]:
    return [f"{cs}-{arch}" for cs in CLASS_SETS for arch in ARCHS]


def get_spec(name: str) -> ModelSpec:
    if name not in spec_names():
        raise UserError(f"unknown model spec {name!r}; fix: use one of {', '.join(spec_names())}")
    class_set, arch = name.rsplit("-", 1)
    return ModelSpec(name, class_set, arch, CLASS_SETS[class_set], RESNET_RECIPE if arch == "resnet" else Recipe())


# The residual net is narrower than the scratch CNN (24 vs 32) so both cost about the same per epoch
# here (~100 s per 20k images on 2 cores without augmentation); the resnet's edge is its pre-training.
RESNET_RECIPE = Recipe(width=24, epochs=30, learning_rate=1e-3, head_from_pretrain=True)


def pretrain_spec() -> ModelSpec:
    return ModelSpec(
        "backbone-pretrain",
        "fer6",
        "resnet",
        PRETRAIN_CLASSES,
        # camera effects came after the committed pre-training (trainer/pretrained) was run: off here so the
        # command reproduces it
        replace(RESNET_RECIPE, epochs=30, learning_rate=2e-3, head_from_pretrain=False, camera_effects=0.0),
    )


SMOKE_PER_CLASS = 48  # images per class in smoke runs (tests, CI)


def smoke(spec: ModelSpec) -> ModelSpec:
    """A tiny run (about a minute) for tests and CI: same code path, fewer images, epochs and channels."""
    recipe = replace(
        spec.recipe,
        epochs=2,
        patience=1,
        warmup_epochs=1,
        width=8,
        per_class_limit=SMOKE_PER_CLASS,
        max_minutes=5.0,
        batch_size=32,
    )
    return replace(spec, recipe=recipe)
