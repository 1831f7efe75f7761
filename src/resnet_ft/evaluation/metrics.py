"""Classification metrics from labels and probabilities (numpy only, exact definitions)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], top_k: int = 5
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
