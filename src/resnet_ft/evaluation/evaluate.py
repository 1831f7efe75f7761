"""Judge a run on a labelled class-per-folder set, and write the report next to it.

The evaluation report is what ``resnet-ft evaluate`` leaves in its folder:
``metrics.json`` (accuracy, top-k, per-class precision/recall/F1, confusion
matrix), ``misclassified.csv`` and ``confusion.png``. It is written here, by
the library, so that scripts calling :func:`evaluate` get the same files the
command line writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.folders import scan
from resnet_ft.errors import InputError
from resnet_ft.evaluation.metrics import classification_report
from resnet_ft.evaluation.plots import plot_confusion
from resnet_ft.evaluation.predictor import Predictor, load_predictor
from resnet_ft.util.atomic import write_text
from resnet_ft.util.tables import csv_text


@dataclass
class Evaluation:
    """A finished evaluation: the report, where it was written, and the skipped files."""

    report: dict[str, Any]
    folder: Path
    misclassified: list[tuple[str, str, str, float]]
    skipped: dict[str, str]


def evaluate(
    run: str | Path,
    data_dir: str | Path,
    *,
    out: str | Path | None = None,
    top_k: int = 5,
    model: str | Path | None = None,
) -> Evaluation:
    """Evaluate ``run`` (or the exported ``model``) on ``data_dir`` and write the report.

    The report goes to ``out``, by default ``RUN/eval/<data folder name>``
    (``-<export name>`` appended when an exported model is evaluated).
    """
    from resnet_ft.exports import load_exported

    run, data_dir = Path(run), Path(data_dir)
    predictor = load_exported(model) if model else load_predictor(run)
    report, misclassified, skipped = evaluate_dir(predictor, data_dir, top_k=top_k)
    name = data_dir.resolve().name + (f"-{Path(model).name}" if model else "")
    folder = Path(out) if out else run / "eval" / name
    write_report(folder, report, misclassified)
    return Evaluation(report, folder, misclassified, skipped)


def write_report(folder: Path, report: dict[str, Any],
                 misclassified: list[tuple[str, str, str, float]]) -> None:
    """``misclassified.csv``, ``metrics.json`` and ``confusion.png`` in ``folder``."""
    write_text(folder / "misclassified.csv",
               csv_text(["file", "true", "predicted", "probability"], misclassified))
    write_text(folder / "metrics.json", json.dumps(report, indent=2, ensure_ascii=False))
    plot_confusion(report["confusion_matrix"], report["labels"], folder / "confusion.png")


def evaluate_dir(predictor: Predictor, data_dir: Path, *, top_k: int = 5,
                 batch_size: int = 32) -> tuple[dict[str, Any], list, dict[str, str]]:
    """Metrics of the run on a class-per-folder set whose classes match the run's labels."""

    _, samples, _ = scan(Path(data_dir), predictor.labels)
    paths = [s.path for s in samples]
    truth, rows, skipped = [], [], {}
    for index, probs, error in predictor.probabilities(paths, batch_size):
        if probs is None:
            skipped[str(paths[index])] = error
            continue
        truth.append(samples[index].label)
        rows.append((paths[index], probs))
    if not rows:
        raise InputError(f"no decodable images in {data_dir}")
    probs = np.stack([p for _, p in rows])
    report = classification_report(np.array(truth), probs, predictor.labels, top_k)
    predicted = probs.argmax(axis=1)
    misclassified = [
        (str(path), predictor.labels[t], predictor.labels[p], float(pr[p]))
        for (path, pr), t, p in zip(rows, truth, predicted, strict=True) if t != p
    ]
    return report, misclassified, skipped
