"""Everything a report shows, read from the run directory and computed on the evaluated images.

The run directory says what was trained and how (``config.yaml``,
``history.csv``, ``metrics.json``, the model file's own save record); the
evaluated set — the run's validation split by default, or a class-per-folder
``DATA_DIR`` — says how the model behaves, image by image. Head-only runs
read the features training cached, so the validation report reproduces
training's ``metrics.json`` exactly and costs no backbone pass.
"""

from __future__ import annotations

import json
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

import resnet_ft
from resnet_ft.data.folders import Sample, scan
from resnet_ft.errors import InputError
from resnet_ft.evaluation.evaluate import Scores, cached_head, score, scores_report
from resnet_ft.features.featurizer import Featurizer
from resnet_ft.inference.features import classifier_featurizer
from resnet_ft.inference.predictor import Predictor
from resnet_ft.runs.run import MODEL_FILE, SPLIT_FILE, Run, model_file
from resnet_ft.util.zipfiles import ZIP_DAMAGE


@dataclass
class RunInfo:
    """What the run directory says about the run."""

    path: Path
    labels: list[str]
    config: dict[str, Any]
    history: list[dict[str, float]]
    metrics: dict[str, Any]  # the run's validation metrics.json ({} when missing)
    learning_rates: list[float]  # per history row (empty when history.csv has no lr column)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class Evaluated:
    """The evaluated images: where they came from, their scores and the metrics of those."""

    title: str
    source: str
    scores: Scores
    report: dict[str, Any]
    misclassified: list[tuple[str, str, str, float]]
    #: the images' pooled features: the store's for a head-only run (no backbone pass)
    featurizer: Featurizer


def read_run(path: Path) -> RunInfo:
    """Labels, config, history, validation metrics, learning rates and versions of a run."""
    run = Run(path)
    history = run.history()
    rates = [row["lr"] for row in history if "lr" in row]
    return RunInfo(path, run.labels, run.settings(), history, run.metrics(),
                   rates if len(rates) == len(history) else [], versions(path))


def evaluate_set(run: Path, predictor: Predictor, data_dir: Path | None, top_k: int,
                 console: Console) -> Evaluated:
    """Score the run's validation split (or ``data_dir``) and compute its metrics."""
    if data_dir is None:
        samples = validation_samples(run, predictor.labels)
        title, source = "validation split", f"the run's validation images ({SPLIT_FILE})"
    else:
        _, samples, _ = scan(data_dir, predictor.labels)
        title, source = data_dir.resolve().name, str(data_dir)
    cached = cached_head(run, predictor, console=console)
    scores = score(predictor, samples, cached=cached, where=source)
    report, misclassified = scores_report(scores, predictor.labels, top_k)
    return Evaluated(title, source, scores, report, misclassified,
                     cached.featurizer if cached else run_featurizer(run, predictor, console))


def run_featurizer(run: Path, predictor: Predictor, console: Console) -> Featurizer:
    """Pooled features by the run's own backbone (fine-tuned: what its head sees), not stored."""
    return classifier_featurizer(predictor.model, Run(run).metadata().get("backbone", {}),
                                 predictor.preprocessing, console)


def validation_samples(run: Path, labels: list[str]) -> list[Sample]:
    """The ``val`` rows of ``split.csv`` as samples, in the file's order."""
    samples = Run(run).samples("val", labels)
    if not samples:
        raise InputError(f"{run / SPLIT_FILE} lists no validation images; give a DATA_DIR to "
                         "evaluate on")
    return samples


def versions(run: Path) -> dict[str, str]:
    """The software that saved the model and the software that builds this report."""
    import keras
    import numpy
    import tensorflow as tf

    found = {"resnet-ft (report)": resnet_ft.__version__, "TensorFlow": tf.__version__,
             "Keras": keras.__version__, "NumPy": numpy.__version__,
             "Python": platform.python_version(), "platform": platform.platform(terse=True)}
    try:
        with zipfile.ZipFile(model_file(run)) as archive:
            saved = json.loads(archive.read("metadata.json"))
        found["model saved with Keras"] = str(saved.get("keras_version", "?"))
        found["model saved on"] = str(saved.get("date_saved", "?"))
    except (KeyError, *ZIP_DAMAGE):  # json's decode errors are ValueErrors
        found["model saved with Keras"] = f"unknown ({MODEL_FILE} has no save record)"
    return found
