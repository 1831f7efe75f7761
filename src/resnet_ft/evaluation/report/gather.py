"""Everything a report shows, read from the run directory and computed on the evaluated images.

The run directory says what was trained and how (``config.yaml``,
``history.csv``, ``metrics.json``, the model file's own save record); the
evaluated set — the run's validation split by default, or a class-per-folder
``DATA_DIR`` — says how the model behaves, image by image. Head-only runs
read the features training cached, so the validation report reproduces
training's ``metrics.json`` exactly and costs no backbone pass.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

import resnet_ft
from resnet_ft.data.folders import Sample, scan
from resnet_ft.errors import InputError
from resnet_ft.evaluation.evaluate import Scores, cached_head, score, scores_report
from resnet_ft.evaluation.predictor import Predictor
from resnet_ft.models.run_dir import MODEL_FILE, SPLIT_FILE, model_path, read_labels


@dataclass
class RunInfo:
    """What the run directory says about the run."""

    path: Path
    labels: list[str]
    config: dict[str, Any]
    history: list[dict[str, float]]
    metrics: dict[str, Any]  # the run's validation metrics.json ({} when missing)
    learning_rates: list[float]  # per history row (empty when the config cannot be read)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class Evaluated:
    """The evaluated images: where they came from, their scores and the metrics of those."""

    title: str
    source: str
    scores: Scores
    report: dict[str, Any]
    misclassified: list[tuple[str, str, str, float]]


def read_run(run: Path) -> RunInfo:
    """Labels, config, history, validation metrics, learning rates and versions of ``run``."""
    labels = read_labels(run)
    config = _read_yaml(run / "config.yaml")
    history = _read_history(run / "history.csv")
    metrics = _read_json(run / "metrics.json")
    return RunInfo(run, labels, config, history, metrics,
                   learning_rates(run, config, history), versions(run))


def evaluate_set(run: Path, predictor: Predictor, data_dir: Path | None, top_k: int,
                 console: Console) -> Evaluated:
    """Score the run's validation split (or ``data_dir``) and compute its metrics."""
    if data_dir is None:
        samples = validation_samples(run, predictor.labels)
        title, source = "validation split", f"the run's validation images ({SPLIT_FILE})"
    else:
        _, samples, _ = scan(data_dir, predictor.labels)
        title, source = data_dir.resolve().name, str(data_dir)
    scores = score(predictor, samples, cached=cached_head(run, predictor), console=console,
                   where=source)
    report, misclassified = scores_report(scores, predictor.labels, top_k)
    return Evaluated(title, source, scores, report, misclassified)


def validation_samples(run: Path, labels: list[str]) -> list[Sample]:
    """The ``val`` rows of ``split.csv`` as samples, in the file's order."""
    path = run / SPLIT_FILE
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("subset") == "val"]
        samples = [Sample(Path(row["file"]), labels.index(row["label"])) for row in rows]
    except (OSError, KeyError, ValueError, csv.Error) as exc:
        raise InputError(f"cannot read the validation split from {path}: {exc}") from exc
    if not samples:
        raise InputError(f"{path} lists no validation images; give a DATA_DIR to evaluate on")
    return samples


def learning_rates(run: Path, config: dict[str, Any], history: list[dict[str, float]]
                   ) -> list[float]:
    """The learning rate at the end of each history epoch, from the run's plan.

    ``history.csv`` does not record it; the schedule is a function of the
    config and the training-set size (one replica assumed), so it is
    recomputed by the very functions that built it.
    """
    from resnet_ft.training.artifacts import usable_files
    from resnet_ft.training.config import make_config
    from resnet_ft.training.plan import plan_phases
    from resnet_ft.training.step import learning_rate

    if not config:  # unreadable: the defaults would plot some other run's rates
        return []
    try:
        resolved = make_config(config)
        train_size = len(usable_files(run, "train"))
    except InputError:
        return []
    phases = {p.number: p for p in plan_phases(resolved, train_size, cached=True)}
    steps = math.ceil(train_size / resolved.batch_size)
    rates = []
    for row in history:
        phase = phases.get(int(row.get("phase", 0)))  # no phase column: nothing to match
        if phase is None:
            return []
        if phase.cosine:
            step = (int(row["epoch"]) - phase.first_epoch + 1) * steps
            rates.append(float(learning_rate(phase)(step)))
        else:
            rates.append(phase.learning_rate)
    return rates


def versions(run: Path) -> dict[str, str]:
    """The software that saved the model and the software that builds this report."""
    import keras
    import numpy
    import tensorflow as tf

    found = {"resnet-ft (report)": resnet_ft.__version__, "TensorFlow": tf.__version__,
             "Keras": keras.__version__, "NumPy": numpy.__version__,
             "Python": platform.python_version(), "platform": platform.platform(terse=True)}
    try:
        with zipfile.ZipFile(model_path(run)) as archive:
            saved = json.loads(archive.read("metadata.json"))
        found["model saved with Keras"] = str(saved.get("keras_version", "?"))
        found["model saved on"] = str(saved.get("date_saved", "?"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        found["model saved with Keras"] = f"unknown ({MODEL_FILE} has no save record)"
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_history(path: Path) -> list[dict[str, float]]:
    """``history.csv`` rows with numeric values (empty when the run has none)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [{key: float(value) for key, value in row.items()}
                    for row in csv.DictReader(handle)]
    except (OSError, ValueError, TypeError, csv.Error):
        return []
