"""Metric functions against hand-computed confusion matrices, including the thesis's 4x4 matrix."""

import numpy as np
import pytest

from edge.core.metrics import confusion_matrix, cross_entropy, evaluate_probs, from_confusion

THESIS = [
    [163, 26, 16, 134],
    [53, 311, 0, 4],
    [0, 0, 124, 146],
    [3, 0, 55, 1354],
]  # rows = true: happy, sad, surprise, neutral


def test_confusion_matrix_rows_are_truth():
    cm = confusion_matrix(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), 2)
    assert cm.tolist() == [[1, 1], [1, 2]]


def test_binary_hand_computed():
    # true 0: 8 right, 2 wrong; true 1: 3 wrong, 7 right
    m = from_confusion([[8, 2], [3, 7]], ["a", "b"])
    assert m["accuracy"] == pytest.approx(15 / 20)
    a = m["per_class"]["a"]
    assert a["precision"] == pytest.approx(8 / 11)
    assert a["recall"] == pytest.approx(8 / 10)
    assert a["specificity"] == pytest.approx(7 / 10)
    assert a["f1"] == pytest.approx(2 * (8 / 11) * 0.8 / (8 / 11 + 0.8))
    assert m["per_class"]["b"]["specificity"] == pytest.approx(0.8)
    assert m["macro"]["recall"] == pytest.approx((0.8 + 0.7) / 2)


def test_thesis_matrix():
    m = from_confusion(THESIS, ["happy", "sad", "surprise", "neutral"])
    assert m["accuracy"] == pytest.approx(0.8171, abs=5e-5)  # the thesis's 81.71%
    # The thesis's specificity 93.90% is the micro (pooled) specificity of this matrix.
    assert m["micro_specificity"] == pytest.approx(0.9390, abs=5e-5)
    # Its recall 79.23% and F1 84.52% match no standard definition over this matrix:
    assert m["macro"]["recall"] == pytest.approx(0.6860, abs=5e-5)
    assert m["weighted"]["recall"] == pytest.approx(0.8171, abs=5e-5)
    assert m["macro"]["f1"] == pytest.approx(0.7219, abs=5e-5)
    assert m["weighted"]["f1"] == pytest.approx(0.8039, abs=5e-5)
    assert m["macro"]["specificity"] == pytest.approx(0.9089, abs=5e-5)
    assert m["per_class"]["neutral"]["recall"] == pytest.approx(1354 / 1412)
    assert m["per_class"]["happy"]["precision"] == pytest.approx(163 / 219)
    assert m["per_class"]["surprise"]["support"] == 270


def test_loss_and_probs():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 1])
    assert cross_entropy(probs, y) == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)
    m = evaluate_probs(probs, y, ["a", "b"])
    assert m["confusion_matrix"] == [[1, 0], [1, 1]]
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_empty_class_does_not_divide_by_zero():
    m = from_confusion([[5, 0], [0, 0]], ["a", "b"])
    assert m["per_class"]["b"]["precision"] == 0.0 and m["per_class"]["b"]["recall"] == 0.0
