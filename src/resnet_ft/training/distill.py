"""Knowledge distillation: a trained run teaches a student backbone of another depth or family.

A distill run is a training run of the student (:func:`~resnet_ft.training.run.run_training`,
everything ``train`` has: head-only or ``--trainable`` stages, resume, run
directory, reports, ``--prune-head``) with a :class:`Teacher` plugged in. The
teacher's probabilities are the expensive part, so they follow the feature
cache's design: the teacher's backbone runs once per image and view, its
pooled features are stored in the same :class:`~resnet_ft.features.store.FeatureCache`,
and the teacher's head turns them into probabilities at any temperature in
milliseconds. Keys:

* the teacher's features are computed as its training computed them: by the
  featurizer (:mod:`resnet_ft.features.featurizer`, the one place that fills the
  store) in the precision its ``config.yaml`` records;
* a head-only teacher whose backbone file is unchanged is keyed by that file,
  exactly as its own training keyed it (:mod:`resnet_ft.features.reuse`), so
  the features extracted then are reused: distillation then costs one student
  pass; any other teacher is keyed by the content hash of its ``model.keras``.

The loss is ``alpha * CE(label) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``
(:mod:`~resnet_ft.training.step`); ``--unlabeled`` images have the soft term
only. ``--baseline`` then trains the same student on labels alone, from the
same cached features, into ``RUN_DIR/baseline`` (an ordinary run directory).
``metrics.json`` gains a ``distillation`` section: student and teacher
accuracy, top-1 agreement, baseline accuracy.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.config import DistillConfig, make_config
from resnet_ft.data.folders import Split, list_images
from resnet_ft.errors import InputError, NonFiniteError
from resnet_ft.features.featurizer import Backbone, Featurizer, run_calibration
from resnet_ft.features.reuse import run_backbone
from resnet_ft.inference.loaders import shared_classifier
from resnet_ft.models.head import logits, split_classifier
from resnet_ft.models.precision import PRECISIONS
from resnet_ft.runs.run import Run
from resnet_ft.training.inputs import Reader
from resnet_ft.training.loop import RunContext
from resnet_ft.training.run import TrainResult, in_strategy, run_training
from resnet_ft.training.step import SoftLoss

BASELINE_DIR = "baseline"


@dataclass
class DistillResult(TrainResult):
    """A finished distill run; ``baseline`` is the labels-only student (``--baseline``)."""

    baseline: TrainResult | None = None


def distill(
    config: DistillConfig | Mapping[str, Any],
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> DistillResult:
    """Distil the teacher run ``config.teacher`` into a student on ``config.backbone``.

    ``config`` may be a mapping of option names, validated like a YAML file.
    The result is an ordinary run directory (``predict``, ``evaluate``,
    ``export`` and ``summary`` accept it).
    """
    if not isinstance(config, DistillConfig):
        config = make_config(dict(config), kind=DistillConfig)
    if not config.teacher:
        raise InputError("no teacher given (TEACHER_RUN argument or teacher in --config)")
    if not config.backbone:
        raise InputError("no student backbone given (--student or backbone in --config)")
    console = console or Console(stderr=True)
    teacher = Teacher(config, console)
    return in_strategy(config, run_dir, console, lambda strategy, out, con: _distill(
        config, teacher, out, resume, overwrite, con, strategy))


def _distill(config: DistillConfig, teacher: Teacher, run_dir: Path, resume: bool,
             overwrite: bool, console: Console, strategy: Any) -> DistillResult:
    baseline_dir = run_dir / BASELINE_DIR
    if overwrite and not resume and baseline_dir.is_dir():  # not a file train itself writes
        shutil.rmtree(baseline_dir)
    result = run_training(config, run_dir, resume, overwrite, console, strategy, teacher,
                          command="distill")
    baseline = None
    if config.baseline:
        console.print(f"baseline: the same student on labels alone, in {baseline_dir}")
        again = resume and (baseline_dir / "state" / "state.json").is_file()
        baseline = run_training(config.student(), baseline_dir, again, not again, console,
                                strategy)
        result.metrics["distillation"]["baseline_accuracy"] = baseline.metrics["accuracy"]
        Run(run_dir).write_metrics(result.metrics)
    return DistillResult(**vars(result), baseline=baseline)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis, computed stably in float64."""
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Teacher:
    """A trained run as a teacher: its classes, its cached features, its probabilities.

    Implements :class:`~resnet_ft.training.run.Distillation`. The run and its
    labels are read at once (a wrong teacher fails before any extraction); the
    model is loaded only to compute what the cache lacks, and let go after.
    """

    def __init__(self, config: DistillConfig, console: Console) -> None:
        self.run = Run.finished(config.teacher)
        self.labels = self.run.labels
        self.loss = SoftLoss(config.alpha, config.temperature)
        self.console = console
        self.unlabeled = _unlabeled(config.unlabeled)
        self.val_probs = np.zeros((0, len(self.labels)))
        self.trained_on_val = 0

    def check(self, split: Split) -> None:
        """Same classes; unlabelled files that DATA_DIR labels are dropped (no val leak)."""
        if split.labels != self.labels:
            raise InputError(f"teacher {self.run.path} was trained on classes {self.labels}; "
                             f"the data has {split.labels}")
        labelled = {s.path.resolve() for s in split.train + split.val}
        kept = [p for p in self.unlabeled if p.resolve() not in labelled]
        if len(kept) < len(self.unlabeled):
            self.console.print(f"--unlabeled: ignoring {len(self.unlabeled) - len(kept)} "
                               "file(s) that the data directory labels")
        self.unlabeled = kept
        try:
            taught = {p.resolve() for p in self.run.split("train")}
        except InputError:  # no split.csv: nothing known about what the teacher saw
            taught = set()
        self.trained_on_val = sum(s.path.resolve() in taught for s in split.val)
        if self.trained_on_val:
            self.console.print(f"note: the teacher was trained on {self.trained_on_val} of the "
                               f"{len(split.val)} validation images; its accuracy here is "
                               "optimistic")

    def targets(self, reader: Reader) -> np.ndarray:
        """Teacher probabilities at temperature T per training file and view; keeps val's."""
        try:
            head, featurizer = self._featurizer(reader)
        except InputError as exc:
            raise InputError(f"teacher {self.run.model_path}: {exc}") from exc
        views = reader.inputs.epoch_views
        train = self._features(featurizer, reader.train, views)
        val = self._features(featurizer, reader.val, 1)
        self.val_probs = softmax(np.asarray(logits(head, val[:, 0]), np.float64))
        scaled = softmax(np.asarray(logits(head, train.reshape(-1, train.shape[-1])),
                                    np.float64) / self.loss.temperature)
        if not (np.isfinite(scaled).all() and np.isfinite(self.val_probs).all()):
            raise NonFiniteError(f"teacher {self.run.model_path} computes non-finite "
                                 "probabilities (NaN or inf): its head's weights are damaged "
                                 "or diverged; retrain the teacher")
        return scaled.reshape(len(train), views, -1).astype(np.float32)

    def _featurizer(self, reader: Reader) -> tuple[Any, Featurizer]:
        """The teacher's head, and the featurizer of its backbone as its training computed."""
        backbone, head = split_classifier(shared_classifier(self.run.model_path))
        settings = self.run.settings()
        root = reader.featurizer.store.base if reader.cached else None
        identity = None
        if root is not None:
            reuse = run_backbone(self.run.model_path, settings.get("backbone", ""),
                                 settings.get("trainable", "head") == "head", lambda: backbone,
                                 root)
            identity = reuse.identity
            if reuse.reused:
                self.console.print("teacher features: keyed by its unchanged backbone file, "
                                   "so those cached when it was trained are reused")
        metadata = self.run.metadata().get("backbone", {})
        precision = _trained_precision(settings)
        return head, Featurizer(Backbone(identity, metadata, backbone), self.run.preprocessing(),
                                precision, store_root=root, console=self.console,
                                strategy=reader.strategy,
                                calibration=run_calibration(self.run, precision))

    def report(self, ctx: RunContext, probs: np.ndarray) -> dict[str, Any]:
        """Student vs teacher on the validation images (the student's ``probs``)."""
        student, teacher = probs.argmax(axis=1), self.val_probs.argmax(axis=1)
        return {
            "teacher": str(self.run.path),
            "alpha": self.loss.alpha,
            "temperature": self.loss.temperature,
            "student_accuracy": float(np.mean(student == ctx.y_val)),
            "teacher_accuracy": float(np.mean(teacher == ctx.y_val)),
            "agreement": float(np.mean(student == teacher)),
            "unlabeled": int(np.sum(ctx.y_train < 0)),
            "teacher_trained_on_val": self.trained_on_val,
        }

    def _features(self, featurizer: Featurizer, files: list[Path], views: int) -> np.ndarray:
        table = featurizer.pooled(files, views, "teacher features")
        if table.errors:  # the student decoded these same files: cannot happen but loudly
            index, reason = next(iter(table.errors.items()))
            raise InputError(f"teacher cannot read {files[index]}: {reason}")
        return np.asarray(table.values, np.float32)


def _unlabeled(folder: str | None) -> list[Path]:
    if not folder:
        return []
    if not Path(folder).is_dir():
        raise InputError(f"--unlabeled: directory not found: {folder}")
    files = list_images(Path(folder))
    if not files:
        raise InputError(f"--unlabeled: no images in {folder}")
    return files


def _trained_precision(settings: dict[str, Any]) -> str:
    """The precision the teacher's training computed its features in (float32 if unrecorded).

    The teacher's probabilities are then those its own training saw, and
    its cached features are found under its training's key.
    """
    precision = str(settings.get("precision", "float32"))
    return precision if precision in PRECISIONS and precision != "auto" else "float32"
