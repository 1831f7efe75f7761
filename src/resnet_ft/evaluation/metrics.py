"""Classification metrics from labels and probabilities (numpy only, exact definitions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_ft.inference.options import DEFAULTS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], top_k: int = DEFAULTS.top_k
) -> dict[str, Any]:
    """Accuracy, top-k accuracy, per-class precision/recall/F1/support, confusion matrix.

    Top-k accuracy is reported only when k is smaller than the number of
    classes: with k >= classes every image is "correct" and the 1.0 would only
    mislead. A class that is never predicted has precision 0 (not NaN), so the
    report is always valid JSON.
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {}
    for index, name in enumerate(labels):
        tp = int(matrix[index, index])
        predicted = int(matrix[:, index].sum())
        support = int(matrix[index].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": precision, "recall": recall, "f1": f1, "support": support,
        }
    n = len(y_true)
    report: dict[str, Any] = {
        "n": n,
        "accuracy": float((y_pred == y_true).mean()) if n else 0.0,
    }
    if top_k < len(labels):
        top = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        hits = (top == y_true[:, None]).any(axis=1)
        report.update(top_k=top_k, top_k_accuracy=float(hits.mean()) if n else 0.0)
    report.update(per_class=per_class, confusion_matrix=matrix.tolist(), labels=list(labels))
    return report


#: Equal-width confidence bins of the reliability diagram (the usual 10, as in Guo et al. 2017).
CALIBRATION_BINS = 10


def calibration(y_true: np.ndarray, probs: np.ndarray,
                bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability bins and expected calibration error of the top-1 confidence.

    A well-calibrated model is right 80 % of the time when it says 0.8. Each
    bin ``(lower, upper]`` holds the images whose top probability falls in it,
    with their mean confidence and their accuracy; ECE is the image-weighted
    mean gap ``|accuracy - confidence|`` over the bins (0: perfectly calibrated).
    """
    y_true = np.asarray(y_true, np.int64)
    confidence = probs.max(axis=1).astype(np.float64)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 cannot occur (sum is 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for index in range(bins):
        members = which == index
        count = int(members.sum())
        mean_conf = float(confidence[members].mean()) if count else 0.0
        accuracy = float(correct[members].mean()) if count else 0.0
        ece += count * abs(accuracy - mean_conf)
        rows.append({"lower": float(edges[index]), "upper": float(edges[index + 1]),
                     "count": count, "confidence": mean_conf, "accuracy": accuracy})
    return {"bins": rows, "ece": ece / len(y_true) if len(y_true) else 0.0}
