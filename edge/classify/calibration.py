"""Decision calibration: per-class log-probability offsets, chosen on val by `emotion-trainer evaluate`.

The classifier's probabilities p become softmax(log p + b), b one offset per label (recorded in the
manifest as {"label": offset}). It moves the decision boundary between classes the model confuses
most (sad vs neutral) without retraining; the device and `evaluate` apply the same function, so the
published metrics are those of the shipped decision. An absent or empty table means no change.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edge.core.errors import ModelError

MAX_OFFSET = 3.0  # e^3 = 20x: beyond that an offset overrides the model rather than calibrating it


def offsets_vector(table: Any, labels: tuple[str, ...], model: str) -> np.ndarray | None:
    """The manifest's offsets in label order, or None when there are none; a bad table is a one-line ModelError."""
    if not table:
        return None
    ok = (
        isinstance(table, dict)
        and set(table) == set(labels)
        and all(isinstance(v, int | float) and math.isfinite(v) and abs(v) <= MAX_OFFSET for v in table.values())
    )
    if not ok:
        raise ModelError(
            f"model {model!r} has a malformed calibration {table!r}: it must give every label of {list(labels)} "
            f"a number within +-{MAX_OFFSET}; fix: re-run 'emotion-trainer evaluate {model}' or restore the manifest"
        )
    b = np.array([float(table[c]) for c in labels], np.float64)
    return None if not b.any() else b


def apply(probs: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """softmax(log p + b) over the last axis; p unchanged when offsets is None."""
    if offsets is None:
        return probs
    w = np.asarray(probs, np.float64) * np.exp(offsets)
    total = w.sum(axis=-1, keepdims=True)
    uniform = np.full_like(w, 1.0 / w.shape[-1])
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), uniform).astype(np.float32)


def _score(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """accuracy + macro-F1: both are floors users read, so neither is bought with the other."""
    f1 = []
    for c in range(k):
        tp = float(np.sum((pred == c) & (y == c)))
        wrong = float(np.sum((pred == c) != (y == c)))
        f1.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    return float(np.mean(pred == y)) + float(np.mean(f1))


def _ascend(logp: np.ndarray, y: np.ndarray, grid: np.ndarray, rounds: int) -> tuple[np.ndarray, float]:
    """Coordinate ascent over the grid, the first class fixed at 0 (only differences matter), ties kept at the
    smaller change."""
    k = logp.shape[1]
    b = np.zeros(k)
    best = _score(y, logp.argmax(1), k)
    for _ in range(rounds):
        changed = False
        for c in range(1, k):
            for v in grid:
                trial = b.copy()
                trial[c] = v
                s = _score(y, (logp + trial).argmax(1), k)
                if s > best + 1e-12 or (abs(s - best) <= 1e-12 and abs(v) < abs(b[c])):
                    best, b, changed = s, trial, changed or v != b[c]
        if not changed:
            break
    return b, best


def search(
    probs: np.ndarray,
    y: np.ndarray,
    grid: np.ndarray | None = None,
    rounds: int = 3,
    min_gain: float = 0.002,
    repeats: int = 5,
) -> tuple[np.ndarray, float, float, float]:
    """Offsets that maximise accuracy + macro-F1 on (probs, y). Returns (offsets, score before, score after,
    held-out gain).

    Offsets fitted to a few thousand faces also fit their noise, so they are kept only if they pass
    repeated two-fold cross-validation: offsets fitted on a random half of the faces must raise the
    score of the other half by more than `min_gain` on average over `repeats` x 2 folds. Otherwise the
    result is all zeros (no calibration). "after" is measured on the faces the offsets were fitted to, so it
    flatters them; the held-out gain (that cross-validation's mean, 0.0 when nothing was kept) is what the
    offsets are worth on faces they did not see, and what candidates are compared by (trainer/evaluate.py).
    """
    grid = np.round(np.arange(-1.0, 1.0001, 0.1), 2) if grid is None else grid
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-9, 1.0))
    y = np.asarray(y)
    k = logp.shape[1]
    before = _score(y, logp.argmax(1), k)
    rng = np.random.default_rng(0)  # fixed: the same val faces always give the same decision
    gains = []
    for _ in range(repeats):
        half = rng.random(len(y)) < 0.5
        for fit, check in ((half, ~half), (~half, half)):
            b, _ = _ascend(logp[fit], y[fit], grid, rounds)
            base = _score(y[check], logp[check].argmax(1), k)
            gains.append(_score(y[check], (logp[check] + b).argmax(1), k) - base)
    held_out = float(np.mean(gains))
    if held_out <= min_gain:
        return np.zeros(k), before, before, 0.0
    b, after = _ascend(logp, y, grid, rounds)
    return b, before, after, held_out
