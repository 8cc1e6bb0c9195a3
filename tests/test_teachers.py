"""The committed teachers (trainer/teachers/) are what a clean clone distils from: each must agree with its own
records, classify real faces and work as a `Teachers` ensemble member for every class set its labels cover."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge.core.preprocess import PreprocessSpec
from trainer.specs import CLASS_SETS

pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
pytestmark = pytest.mark.slow

TEACHERS = Path(__file__).resolve().parent.parent / "trainer" / "teachers"
FOLDERS = sorted(p for p in TEACHERS.iterdir() if p.is_dir())


def test_there_is_a_teacher_and_the_readme_lists_each():
    assert FOLDERS
    readme = (TEACHERS / "README.md").read_text()
    for folder in FOLDERS:
        info = json.loads((folder / "train.json").read_text())
        assert f"`{folder.name}`" in readme and info["command"].split(" ", 1)[1] in readme  # args, however invoked
        assert str(info["best_val_accuracy"]) in readme and str(info["minutes_total"]) in readme


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_records_agree_and_the_teacher_knows_faces(folder, fer_root):
    from trainer.dataset import load_split
    from trainer.train import Teachers

    info = json.loads((folder / "train.json").read_text())
    assert info["complete"] is True and info["preprocess"] == PreprocessSpec().to_dict()
    with (folder / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == info["epochs_run"] > 0
    assert max(float(r["val_accuracy"]) for r in rows) == pytest.approx(info["best_val_accuracy"], abs=1e-4)
    for labels in CLASS_SETS.values():
        if not set(labels) <= set(info["labels"]):
            continue
        teachers = Teachers([folder], labels, 1.0)  # weight 1: the targets are the teacher's renormalised votes
        val = load_split(fer_root, "val", labels, PreprocessSpec(), per_class_limit=40)
        hard = np.eye(len(labels), dtype=np.float32)[val.y]
        soft = teachers.targets(val.x.astype(np.float32), hard)
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
        acc = float((soft.argmax(1) == val.y).mean())
        assert acc > 0.6 + 0.1 * (4 - len(labels)), (labels, acc)  # chance: 1 / len(labels)
