"""The committed pre-trainings (trainer/pretrained/ at the recipe's width, trainer/pretrained/wN[-...]/ at width N) are
what a clean clone fine-tunes from: each must load into the backbone of its width, carry the six-class head, agree
with its own records, and classify real faces."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import numpy as np
import pytest

from edge.core.preprocess import PreprocessSpec
from trainer.specs import PRETRAIN_CLASSES, RESNET_RECIPE, get_spec
from trainer.train import BACKBONE_FILE, HEAD_FILE, PRETRAINED

pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
pytestmark = pytest.mark.slow
FOLDERS = [PRETRAINED, *sorted(p for p in PRETRAINED.glob("w*") if (p / "train.json").is_file())]


def _width(folder) -> int:
    if folder == PRETRAINED:
        return RESNET_RECIPE.width
    named = re.fullmatch(r"w(\d+)(-\w+)?", folder.name)  # wN, or wN-WHAT for another run at width N
    assert named, folder
    return int(named[1])


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_records_agree_with_the_recipe(folder):
    info = json.loads((folder / "train.json").read_text())
    assert info["spec"] == "backbone-pretrain" and info["labels"] == list(PRETRAIN_CLASSES)
    assert info["recipe"]["width"] == _width(folder) and info["preprocess"] == PreprocessSpec().to_dict()
    if folder != PRETRAINED:  # another one: finished, and made by the command with that width
        width = _width(folder)
        assert info["complete"] is True
        command = info["command"]
        assert f"--width {width}" in command or (width == RESNET_RECIPE.width and "--width" not in command)
    if info.get("backbone_weights"):  # a continued pre-training: what it started from is committed too
        assert (PRETRAINED.parents[1] / info["backbone_weights"]).is_file() and info["head_from_pretrain"] is True
    with (folder / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == info["epochs_run"] > 0
    assert max(float(r["val_accuracy"]) for r in rows) == pytest.approx(info["best_val_accuracy"], abs=1e-4)
    with np.load(folder / HEAD_FILE) as z:
        assert [str(c) for c in z["labels"]] == list(PRETRAIN_CLASSES)
        assert z["kernel"].shape[1] == len(PRETRAIN_CLASSES) == z["bias"].shape[0]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_a_fine_tune_starts_from_it_and_already_knows_faces(folder, fer_root):
    """Backbone + head rows for the production classes, before any fine-tuning: far above chance on val faces."""
    from trainer.dataset import load_split
    from trainer.train import build_model, init_head_from_pretrain

    spec = get_spec("multiclass4-resnet")
    spec = replace(spec, recipe=replace(spec.recipe, width=_width(folder)))
    model = build_model(spec, "fer-resnet", folder / BACKBONE_FILE, PreprocessSpec().input_shape)
    assert init_head_from_pretrain(model, folder, spec.labels)
    val = load_split(fer_root, "val", spec.labels, PreprocessSpec(), per_class_limit=60)
    acc = float((model.predict(val.x.astype(np.float32), verbose=0).argmax(1) == val.y).mean())
    assert acc > 0.55, acc  # chance is 0.25


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_train_from_the_committed_weights(folder, run, fer_root, tmp_path):
    """The README's command, on a smoke budget at the folder's width: a clean clone fine-tunes without pretrain."""
    proc = run(
        "trainer",
        "train",
        "multiclass4-resnet",
        fer_root,
        "--smoke",
        "--width",
        str(_width(folder)),
        "--epochs",
        "1",
        "--runs",
        tmp_path / "runs",
        "--cache",
        tmp_path / "c",
        "--backbone-weights",
        folder / BACKBONE_FILE,
        timeout=600,
    )
    assert proc.returncode == 0 and "multiclass4-resnet: val accuracy" in proc.stdout, proc.stderr[-2000:]
    assert json.loads((tmp_path / "runs" / "multiclass4-resnet" / "train.json").read_text())["head_from_pretrain"]
