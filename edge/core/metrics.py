"""Classification metrics (evaluate, compare-fer, analyze --score) from a confusion matrix, ROWS = TRUE CLASS.

Per class c (one-vs-rest): precision = TP/(TP+FP), recall (sensitivity) = TP/(TP+FN),
specificity = TN/(TN+FP), F1 = 2PR/(P+R). Macro = unweighted mean over classes; weighted = mean
weighted by true-class support; micro specificity pools TN and FP over classes. Accuracy = trace/total.
Loss = mean categorical cross-entropy of the predicted probabilities (clipped at 1e-7).
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def from_confusion(cm: np.ndarray, labels: list[str] | tuple[str, ...]) -> dict:
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = total - tp - fn - fp
    precision, recall = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
    specificity = _safe_div(tn, tn + fp)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    support = cm.sum(axis=1)
    w = support / total if total else support
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "specificity": float(specificity[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    scores = {"precision": precision, "recall": recall, "f1": f1, "specificity": specificity}
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "per_class": per_class,
        "macro": {k: float(np.average(v)) for k, v in scores.items()},
        "weighted": {k: float(np.average(v, weights=w)) for k, v in scores.items()},
        "micro_specificity": float(tn.sum() / (tn.sum() + fp.sum())) if (tn.sum() + fp.sum()) else 0.0,
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_axes": "rows = true class, columns = predicted class, in label order",
        "labels": list(labels),
        "n": int(total),
    }


def cross_entropy(probs: np.ndarray, y_true: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return float(-np.log(p).mean())


def evaluate_probs(probs: np.ndarray, y_true: np.ndarray, labels) -> dict:
    """All metrics for (N, C) probabilities against (N,) true indices."""
    pred = probs.argmax(axis=1)
    out = from_confusion(confusion_matrix(y_true, pred, len(labels)), labels)
    out["loss"] = cross_entropy(probs, y_true)
    return out
