"""Decision calibration (edge/classify/calibration.py): the search finds a real shift and ignores noise, the
classifier applies the manifest's offsets the same way per face and in a batch, bad tables are refused."""

from __future__ import annotations

import numpy as np
import pytest

from edge.classify import calibration
from edge.core.errors import ModelError


def _biased(n: int = 3000, k: int = 4, shift=(0.0, 0.0, 0.9, 0.0), seed: int = 0):
    """Probabilities of a model that over-predicts class 2 by e^0.9 relative to calibrated scores."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0.0, 1.0, (n, k))
    logits[np.arange(n), y] += 1.2
    logits += np.array(shift)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True), y


def test_search_undoes_a_known_bias():
    probs, y = _biased()
    offsets, before, after, held_out = calibration.search(probs, y)
    assert after > before + 0.01
    # faces the offsets were not fitted to gain too, but less than the faces they were fitted to claim
    assert 0.002 < held_out < after - before
    assert offsets[0] == 0.0 and -1.0 <= offsets[2] <= -0.5  # the over-predicted class is pulled back
    assert abs(offsets[1]) <= 0.3 and abs(offsets[3]) <= 0.3
    fresh, y2 = _biased(seed=1)  # and it helps on faces it did not see
    plain = np.mean(fresh.argmax(1) == y2)
    tuned = np.mean(calibration.apply(fresh, offsets).argmax(1) == y2)
    assert tuned > plain


def test_search_leaves_a_calibrated_model_alone():
    probs, y = _biased(shift=(0.0, 0.0, 0.0, 0.0))
    offsets, before, after, held_out = calibration.search(probs, y)
    assert not offsets.any() and before == after and held_out == 0.0


def test_apply_is_softmax_of_shifted_logs():
    p = np.array([[0.5, 0.3, 0.2]], np.float32)
    b = np.array([0.0, 0.5, -0.5])
    want = np.exp(np.log(p) + b)
    np.testing.assert_allclose(calibration.apply(p, b), want / want.sum(), rtol=1e-6)
    assert calibration.apply(p, None) is p
    zero = calibration.apply(np.zeros((1, 3), np.float32), b)  # a degenerate all-zero output stays a distribution
    np.testing.assert_allclose(zero, np.full((1, 3), 1 / 3), rtol=1e-6)


@pytest.mark.parametrize(
    "table",
    [{"a": 0.0}, {"a": 0.0, "b": "1"}, {"a": 0.0, "b": float("nan")}, {"a": 0.0, "b": 9.0}, ["a", "b"]],
)
def test_bad_tables_are_one_line(table):
    with pytest.raises(ModelError, match="malformed calibration") as exc:
        calibration.offsets_vector(table, ("a", "b"), "m")
    assert "\n" not in str(exc.value)


def test_zero_or_absent_table_means_none():
    assert calibration.offsets_vector(None, ("a", "b"), "m") is None
    assert calibration.offsets_vector({"a": 0, "b": 0.0}, ("a", "b"), "m") is None


def test_classifier_applies_the_manifest_offsets_per_face_and_batched():
    from edge.classify.tflite import TFLiteClassifier
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    entry = Manifest(models_dir()).entry("multiclass4-resnet")
    table = {"happy": 0.0, "sad": 0.4, "surprise": -0.8, "neutral": -0.2}
    raw = TFLiteClassifier(entry, calibration={})
    tuned = TFLiteClassifier(entry, calibration=table)
    faces = list(np.random.default_rng(0).integers(0, 256, (3, *raw.spec.input_shape), dtype=np.uint8))
    b = np.array([table[c] for c in entry.labels])
    for face, batched in zip(faces, tuned.probabilities_batch(faces), strict=True):
        want = calibration.apply(raw.probabilities(face), b)
        np.testing.assert_allclose(tuned.probabilities(face), want, atol=1e-6)
        np.testing.assert_allclose(batched, want, atol=1e-6)
    shipped = TFLiteClassifier(entry)  # default: the manifest's own table (or none)
    assert shipped.calibration == (entry.data.get("calibration") or {})
