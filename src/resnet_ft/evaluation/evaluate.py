"""Judge a run on a labelled class-per-folder set, and write the report next to it.

The evaluation report is what ``resnet-ft evaluate`` leaves in its folder:
``metrics.json`` (accuracy, top-k, per-class precision/recall/F1, confusion
matrix, calibration), ``misclassified.csv`` and ``confusion.png``. It is
written here, by the library, so that scripts calling :func:`evaluate` get
the same files the command line writes.

Test-time flips (``tta``) average the probabilities of each image and its
horizontal mirror. A head-only run reads both views from the feature cache
training filled (:func:`cached_head`), so on images it has seen they cost
nothing, and its metrics are computed exactly as training computed them
(also under mixed precision); other models run the mirror through the network.

Precision: float32 by default, so the report is the exported model's;
``precision`` (``--precision``) computes in another for bulk jobs. Cached
features are those of the evaluation's precision (the store keys them by
it), computed by the featurizer that fills the store everywhere
(:mod:`resnet_ft.features.featurizer`): evaluating a head-only run in the
precision it was trained in reproduces its ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import Sample, scan
from resnet_ft.errors import InputError
from resnet_ft.evaluation.coverage import risk_coverage
from resnet_ft.evaluation.metrics import calibration, classification_report
from resnet_ft.evaluation.plots import plot_confusion
from resnet_ft.features.featurizer import Featurizer
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.inference.options import InferenceOptions, inference_options
from resnet_ft.inference.predictor import NON_FINITE, Predictor
from resnet_ft.runs.run import Run
from resnet_ft.util.atomic import write_text
from resnet_ft.util.tables import csv_text

#: Pooled features per call of the head on cached features.
HEAD_BATCH = 256


@dataclass
class Evaluation:
    """A finished evaluation: the report, where it was written, and the skipped files."""

    report: dict[str, Any]
    folder: Path
    misclassified: list[tuple[str, str, str, float]]
    skipped: dict[str, str]
    cached: int = 0  # images whose features the feature cache served


@dataclass
class Scores:
    """Every evaluated image's probabilities per view (view 1: the mirror), and the failures."""

    paths: list[Path]
    truth: np.ndarray  # (N,) class indices
    views: np.ndarray  # (N, views, classes)
    skipped: dict[str, str]
    cached: int = 0
    #: (N,) the run's reject score per image, and whether it is beyond the threshold
    #: (None for a model without a scorer: an export, a run trained before scorers).
    ood: np.ndarray | None = None
    rejected: np.ndarray | None = None

    def probs(self, tta: bool = False) -> np.ndarray:
        """(N, classes): the first view's, or the mean over the image and its mirror."""
        return self.views.mean(axis=1) if tta else self.views[:, 0]


@dataclass
class CachedHead:
    """A head-only run seen through the feature store: its featurizer and its head."""

    featurizer: Featurizer
    head: Any


def evaluate(run: str | Path, data_dir: str | Path, *, out: str | Path | None = None,
             console: Console | None = None, **values: Any) -> Evaluation:
    """Evaluate ``run`` (or the exported ``model``) on ``data_dir`` and write the report.

    ``values`` are :class:`~resnet_ft.inference.options.InferenceOptions`
    (``top_k``, ``batch_size``, ``tta``, ``model``, ``precision``). The report goes
    to ``out``, by default ``RUN/eval/<data folder name>`` (``-<export name>``
    appended when an exported ``model`` is evaluated). With ``tta`` the report
    is of the flip-averaged predictions and also holds ``without_tta``
    accuracy, so the gain is visible. ``precision`` (``auto``, ``float32``,
    ``mixed_bfloat16``, ``mixed_float16``) is float32 by default; an exported
    model computes as it was exported.
    """
    options = inference_options(**values)
    run, data_dir = Path(run), Path(data_dir)
    console = console or Console(stderr=True)
    model = options.model
    predictor = load_predictor(model or run, options.labels, precision=options.precision,
                               console=console)
    _, samples, _ = scan(data_dir, predictor.labels)
    cached = None if model else cached_head(run, predictor, predictor.precision, console)
    scores = score(predictor, samples, options, views=2 if options.tta else 1, cached=cached,
                   where=str(data_dir))
    report, misclassified = scores_report(scores, predictor.labels, options.top_k, options.tta)
    name = data_dir.resolve().name + (f"-{Path(model).name}" if model else "")
    folder = Path(out) if out else run / "eval" / name
    write_report(folder, report, misclassified)
    return Evaluation(report, folder, misclassified, scores.skipped, scores.cached)


def write_report(folder: Path, report: dict[str, Any],
                 misclassified: list[tuple[str, str, str, float]]) -> None:
    """``misclassified.csv``, ``metrics.json`` and ``confusion.png`` in ``folder``."""
    write_text(folder / "misclassified.csv",
               csv_text(["file", "true", "predicted", "probability"], misclassified))
    write_text(folder / "metrics.json", json.dumps(report, indent=2, ensure_ascii=False))
    plot_confusion(report["confusion_matrix"], report["labels"], folder / "confusion.png")


def evaluate_dir(predictor: Predictor, data_dir: Path, **values: Any
                 ) -> tuple[dict[str, Any], list, dict[str, str]]:
    """Metrics of the run on a class-per-folder set whose classes match the run's labels."""
    options = inference_options(**values)
    _, samples, _ = scan(Path(data_dir), predictor.labels)
    scores = score(predictor, samples, options, where=str(data_dir))
    report, misclassified = scores_report(scores, predictor.labels, options.top_k)
    return report, misclassified, scores.skipped


def scores_report(scores: Scores, labels: list[str], top_k: int,
                  tta: bool = False) -> tuple[dict[str, Any], list[tuple[str, str, str, float]]]:
    """The metrics of ``scores`` (flip-averaged with ``tta``) and the misclassified files."""
    probs = scores.probs(tta)
    report = classification_report(scores.truth, probs, labels, top_k)
    report["calibration"] = calibration(scores.truth, probs)
    if scores.ood is not None and scores.rejected is not None:
        report["risk_coverage"] = risk_coverage(probs.argmax(1) == scores.truth, scores.ood,
                                                scores.rejected)
    if tta:
        plain = classification_report(scores.truth, scores.probs(False), labels, top_k)
        report["tta"] = "flip"
        report["without_tta"] = {key: plain[key] for key in ("accuracy", "top_k_accuracy")
                                 if key in plain}
    predicted = probs.argmax(axis=1)
    misclassified = [
        (str(path), labels[t], labels[p], float(row[p]))
        for path, row, t, p in zip(scores.paths, probs, scores.truth, predicted, strict=True)
        if t != p
    ]
    return report, misclassified


def score(predictor: Predictor, samples: list[Sample], options: InferenceOptions | None = None,
          *, views: int = 1, cached: CachedHead | None = None,
          where: str = "the evaluated set") -> Scores:
    """Probabilities of every decodable sample and view; undecodable files are listed apart."""
    options = options or inference_options()
    paths = [s.path for s in samples]
    if cached is not None:
        found, probs, ood, skipped, hits = _cached_probabilities(cached, paths, views,
                                                                 predictor.scorer)
    else:
        found, rows, scored, skipped, hits = [], [], [], {}, 0
        for index, row, value, error in predictor.view_scores(paths, options.batch_size, views):
            if row is None:
                skipped[str(paths[index])] = error
            else:
                found.append(index)
                rows.append(row)
                scored.append(value)
        probs = np.stack(rows) if rows else np.zeros((0, views, len(predictor.labels)))
        ood = None if predictor.scorer is None else np.array(scored, np.float64)
    if not found:
        raise InputError(f"no decodable images in {where}")
    truth = np.array([samples[i].label for i in found], np.int64)
    rejected = None if ood is None else predictor.scorer.rejects(ood)
    return Scores([paths[i] for i in found], truth, probs, skipped, hits, ood, rejected)


def _cached_probabilities(cached: CachedHead, paths: list[Path], views: int, scorer: Any):
    """(found indices, (n, views, classes) probabilities, reject scores of the plain view or
    None without ``scorer``, skipped, cache hits) via the store.

    Files whose probabilities are not finite are skipped with a reason, as ``predict``
    reports them.
    """
    from resnet_ft.models.head import probabilities

    table = cached.featurizer.pooled(paths, views)
    decoded = [i for i in range(len(paths)) if i not in table.errors]
    features = np.asarray(table.values)[decoded]
    probs = np.stack([
        np.concatenate([probabilities(cached.head, features[start:start + HEAD_BATCH, view])
                        for start in range(0, max(len(decoded), 1), HEAD_BATCH)])
        for view in range(views)], axis=1)
    finite = np.isfinite(probs).all(axis=(1, 2))
    errors = {**table.errors, **{decoded[i]: NON_FINITE for i in np.flatnonzero(~finite)}}
    skipped = {str(paths[i]): reason for i, reason in sorted(errors.items())}
    found = [i for i, ok in zip(decoded, finite, strict=True) if ok]
    ood = None if scorer is None else scorer.scores(features[finite][:, 0])
    return found, probs[finite], ood, skipped, len(decoded) - table.extracted


def cached_head(run: Path, predictor: Predictor, precision: str | None = None,
                console: Console | None = None) -> CachedHead | None:
    """The run's feature store, when its entries are exactly this model's inputs.

    Only a head-only run feeds its saved head the pooled features it cached,
    and only while its backbone file is unchanged
    (:func:`~resnet_ft.features.reuse.run_backbone`), so a backbone replaced
    since training is neither trusted nor poisoned with this model's features.
    The entries are those of ``precision`` (default: the run's own, as training
    computed them); missing ones are computed by the same featurizer training
    uses, so the store stays one store with one meaning per key.
    """
    from resnet_ft.features.featurizer import Backbone, run_calibration, store_root
    from resnet_ft.features.reuse import run_backbone
    from resnet_ft.models.head import split_classifier

    trained = Run(run)
    try:
        config = trained.config()
    except InputError:
        return None
    precision = precision or config.precision
    decided = precision != "auto"  # training records what it decided; else unknown
    if not (config.cache and config.trainable == "head" and decided
            and config.preprocessing == predictor.preprocessing):
        return None
    backbone, head = split_classifier(predictor.model)
    root = store_root(config.cache_dir)
    reuse = run_backbone(trained.model_path, config.backbone_file(fetch=False), True,
                         lambda: backbone, root)
    if not reuse.reused:
        return None
    metadata = trained.metadata().get("backbone", {})
    featurizer = Featurizer(Backbone(reuse.identity, metadata, backbone), config.preprocessing,
                            precision, store_root=root, console=console or Console(stderr=True),
                            calibration=run_calibration(trained, precision))
    return CachedHead(featurizer, head)
