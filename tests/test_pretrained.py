"""The committed pre-training (trainer/pretrained/) is what a clean clone fine-tunes from: it must load into the
resnet recipe's backbone, carry the six-class head, agree with its own records, and classify real faces."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edge.core.preprocess import PreprocessSpec
from trainer.specs import PRETRAIN_CLASSES, RESNET_RECIPE, get_spec
from trainer.train import BACKBONE_FILE, HEAD_FILE, PRETRAINED

pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
pytestmark = pytest.mark.slow


def test_records_agree_with_the_recipe():
    info = json.loads((PRETRAINED / "train.json").read_text())
    assert info["spec"] == "backbone-pretrain" and info["labels"] == list(PRETRAIN_CLASSES)
    assert info["recipe"]["width"] == RESNET_RECIPE.width and info["preprocess"] == PreprocessSpec().to_dict()
    with (PRETRAINED / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == info["epochs_run"] > 0
    assert max(float(r["val_accuracy"]) for r in rows) == pytest.approx(info["best_val_accuracy"], abs=1e-4)
    with np.load(PRETRAINED / HEAD_FILE) as z:
        assert [str(c) for c in z["labels"]] == list(PRETRAIN_CLASSES)
        assert z["kernel"].shape[1] == len(PRETRAIN_CLASSES) == z["bias"].shape[0]


def test_a_fine_tune_starts_from_it_and_already_knows_faces(fer_root):
    """Backbone + head rows for the production classes, before any fine-tuning: far above chance on val faces."""
    from trainer.dataset import load_split
    from trainer.train import build_model, init_head_from_pretrain

    spec = get_spec("multiclass4-resnet")
    model = build_model(spec, "fer-resnet", PRETRAINED / BACKBONE_FILE, PreprocessSpec().input_shape)
    assert init_head_from_pretrain(model, PRETRAINED, spec.labels)
    val = load_split(fer_root, "val", spec.labels, PreprocessSpec(), per_class_limit=60)
    acc = float((model.predict(val.x.astype(np.float32), verbose=0).argmax(1) == val.y).mean())
    assert acc > 0.55, acc  # chance is 0.25


def test_train_from_the_committed_weights(run, fer_root, tmp_path):
    """The README's command, on a smoke budget at the recipe's width: a clean clone fine-tunes without pretrain."""
    proc = run(
        "trainer",
        "train",
        "multiclass4-resnet",
        fer_root,
        "--smoke",
        "--width",
        str(RESNET_RECIPE.width),
        "--epochs",
        "1",
        "--runs",
        tmp_path / "runs",
        "--cache",
        tmp_path / "c",
        "--backbone-weights",
        PRETRAINED / BACKBONE_FILE,
        timeout=600,
    )
    assert proc.returncode == 0 and "multiclass4-resnet: val accuracy" in proc.stdout, proc.stderr[-2000:]
    assert json.loads((tmp_path / "runs" / "multiclass4-resnet" / "train.json").read_text())["head_from_pretrain"]
