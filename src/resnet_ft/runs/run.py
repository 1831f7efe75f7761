"""A run directory: its layout, and the one place its files are read.

``train`` (and ``distill``) write a run directory; ``predict``, ``evaluate``,
``export``, ``report``, ``summary`` and a distillation teacher read it. The
file names, the checks that a directory really is a finished run, and the
readers of ``config.yaml``, ``labels.json``, ``split.csv``, ``skipped.csv``,
``metrics.json`` and ``history.csv`` live here, once, so every reader fails
the same way on the same broken directory and no caller parses a run file
its own way.

The layout::

    config.yaml    the fully resolved config (--config RUN/config.yaml reproduces the run)
    labels.json    class names in output order
    split.csv      file,label,subset: the training and validation files
    skipped.csv    file,reason: files that could not be decoded (when any)
    model.keras    the best epoch's classifier (pixels -> probabilities)
    metrics.json   the validation report
    history.csv    one row per epoch (HISTORY_FIELDS)
    scorer.npz     the reject score and its threshold (runs/scorer.py; runs before it have none)
    state/         the resumable training state (training.state)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from resnet_ft.config import DistillConfig, TrainConfig, load_yaml, make_config
from resnet_ft.data.folders import Sample
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.errors import InputError
from resnet_ft.models.files import load_model, read_metadata
from resnet_ft.runs.scorer import Scorer
from resnet_ft.util.atomic import write_text
from resnet_ft.util.tables import csv_text

if TYPE_CHECKING:
    import keras

    from resnet_ft.models.params import ParameterSummary

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
SPLIT_FILE = "split.csv"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
SKIPPED_FILE = "skipped.csv"
SCORER_FILE = "scorer.npz"
STATE_DIR = "state"
#: The columns of history.csv; ``lr`` is the learning rate at the epoch's last step.
HISTORY_FIELDS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "seconds",
                  "lr")
#: Everything a run writes (and what report and evaluate add inside it); --overwrite removes
#: exactly these.
RUN_FILES = (CONFIG_FILE, LABELS_FILE, SPLIT_FILE, STATE_DIR, MODEL_FILE, HISTORY_FILE,
             METRICS_FILE, "curves.png", "confusion.png", "top_losses.png", "logs",
             SKIPPED_FILE, "baseline", "report", "eval", SCORER_FILE)


def model_file(path: str | Path) -> Path:
    """The model file for ``path``: the file itself, or ``RUN_DIR/model.keras``."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


class Run:
    """One run directory, read lazily: nothing is opened until asked for."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._labels: list[str] | None = None

    @classmethod
    def finished(cls, path: str | Path) -> Run:
        """The run at ``path`` when it exists and holds a trained model; else a one-line error."""
        run = cls(path)
        if not run.path.is_dir():
            raise InputError(f"run directory not found: {run.path}")
        if not run.model_path.is_file():
            raise InputError(f"no trained model in {run.path} (missing {MODEL_FILE})")
        return run

    def file(self, name: str) -> Path:
        """A file of the run by its name (one of the module's ``*_FILE`` names)."""
        return self.path / name

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    @property
    def labels(self) -> list[str]:
        """Class names in output order."""
        if self._labels is None:
            path = self.file(LABELS_FILE)
            try:
                labels = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
                raise InputError(f"cannot read {path}: {exc}") from exc
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise InputError(f"{path} must be a JSON list of class names")
            self._labels = labels
        return self._labels

    def settings(self) -> dict[str, Any]:
        """``config.yaml`` as plain data, for display: ``{}`` when missing or unreadable."""
        try:
            data = yaml.safe_load(self.file(CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    def config_layer(self) -> dict[str, Any]:
        """``config.yaml`` as options to build on (``--resume``): ``{}`` when there is none,
        a one-line error when it is not a valid config file."""
        path = self.file(CONFIG_FILE)
        return load_yaml(path) if path.is_file() else {}

    def config(self) -> TrainConfig:
        """``config.yaml`` validated: the config that trained this run (distill's when it was one).

        Raises :class:`InputError` when it is missing or invalid.
        """
        settings = self.settings()
        if not settings:
            raise InputError(f"cannot read a config from {self.file(CONFIG_FILE)}")
        kind = DistillConfig if "teacher" in settings else TrainConfig
        return make_config(settings, kind=kind)

    def split(self, subset: str) -> list[Path]:
        """The run's ``train`` or ``val`` image files, as recorded in ``split.csv``."""
        try:
            return [Path(row["file"]) for row in self._split_rows()
                    if row.get("subset") == subset]
        except (OSError, KeyError, ValueError, csv.Error) as exc:  # ValueError: not UTF-8
            raise InputError(f"cannot read {self.file(SPLIT_FILE)}: {exc}") from exc

    def samples(self, subset: str, labels: list[str] | None = None) -> list[Sample]:
        """The ``subset`` rows of ``split.csv`` as samples (label indices), in the file's order.

        ``labels`` fixes the class order (default: the run's own).
        """
        labels = self.labels if labels is None else labels
        try:
            return [Sample(Path(row["file"]), labels.index(row["label"]))
                    for row in self._split_rows() if row.get("subset") == subset]
        except (OSError, KeyError, ValueError, csv.Error) as exc:
            name = {"val": "validation", "train": "training"}.get(subset, subset)
            raise InputError(f"cannot read the {name} split from {self.file(SPLIT_FILE)}: "
                             f"{exc}") from exc

    def _split_rows(self) -> list[dict[str, str]]:
        with self.file(SPLIT_FILE).open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def skipped(self) -> set[str]:
        """Files the run could not decode (``skipped.csv``; empty when it has none, a one-line
        error when it cannot be read: guessing would use images the run refused)."""
        path = self.file(SKIPPED_FILE)
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                return {row["file"] for row in csv.DictReader(handle)}
        except FileNotFoundError:
            return set()
        except (OSError, KeyError, ValueError, csv.Error) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc

    def usable(self, subset: str) -> list[Path]:
        """The ``train`` or ``val`` files the run used: ``split.csv``'s less ``skipped.csv``'s."""
        skipped = self.skipped()
        return [path for path in self.split(subset) if str(path) not in skipped]

    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` (``{}`` when missing or unreadable)."""
        try:
            data = json.loads(self.file(METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not JSON, not UTF-8
            return {}
        return data if isinstance(data, dict) else {}

    def history(self) -> list[dict[str, float]]:
        """``history.csv`` rows with numeric values (empty when the run has none)."""
        try:
            with self.file(HISTORY_FILE).open(newline="", encoding="utf-8") as handle:
                return [{key: float(value) for key, value in row.items() if value != ""}
                        for row in csv.DictReader(handle)]
        except (OSError, ValueError, TypeError, csv.Error):
            return []

    def scorer(self) -> Scorer | None:
        """The reject scorer (``None`` for a run trained before there was one)."""
        path = self.file(SCORER_FILE)
        return Scorer.load(path) if path.is_file() else None

    def require_scorer(self) -> Scorer:
        """The reject scorer, or a one-line error saying how to get one."""
        scorer = self.scorer()
        if scorer is None:
            raise InputError(f"{self.path} has no reject score ({SCORER_FILE}): it was trained "
                             "before resnet-ft had one; train it again to get one")
        return scorer

    def metadata(self) -> dict[str, Any]:
        """The description stored in ``model.keras`` (labels, preprocessing, backbone)."""
        return read_metadata(self.model_path)

    def preprocessing(self) -> Preprocessing:
        """The geometry the run's model was trained with (from its model file)."""
        stored = self.metadata().get("preprocessing", {})
        try:
            return Preprocessing.from_dict(stored) if stored else Preprocessing()
        except ValueError as exc:
            raise InputError(f"{self.model_path} has no valid preprocessing: {stored}") from exc

    def load_classifier(self, load: Callable[[Path], keras.Model] = load_model
                        ) -> tuple[keras.Model, list[str]]:
        """The trained model (pixels in [0, 255] -> probabilities) and its labels.

        The two files must agree: a model with more outputs than names would index
        past the labels, one with fewer would silently leave classes out. ``load``
        reads the model file (inference shares models it loaded lately).
        """
        model, labels = load(self.model_path), self.labels
        classes = model.outputs[0].shape[-1]
        if classes != len(labels):
            raise InputError(f"{self.file(LABELS_FILE)} lists {len(labels)} classes but "
                             f"{self.model_path} has {classes} outputs")
        return model, labels

    def write_inputs(self, config: TrainConfig, labels: list[str], split_csv: str) -> None:
        """The resolved config, the class names and the split: what the run is, before it runs."""
        write_text(self.file(CONFIG_FILE), config.to_yaml())
        write_text(self.file(LABELS_FILE), json.dumps(labels, indent=2, ensure_ascii=False))
        write_text(self.file(SPLIT_FILE), split_csv)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_text(self.file(METRICS_FILE), json.dumps(metrics, indent=2, ensure_ascii=False))

    def write_history(self, history: list[dict[str, float]]) -> None:
        rows = ([row.get(key, "") for key in HISTORY_FIELDS] for row in history)
        write_text(self.file(HISTORY_FILE), csv_text(HISTORY_FIELDS, rows))

    def write_skipped(self, skipped: dict[str, str]) -> None:
        write_text(self.file(SKIPPED_FILE), csv_text(["file", "reason"], skipped.items()))


def load_classifier(run_dir: str | Path) -> tuple[keras.Model, list[str]]:
    """A trained run's model (pixels in [0, 255] -> probabilities) and its labels."""
    return Run.finished(run_dir).load_classifier()


def summarize(model: keras.Model | str | Path) -> ParameterSummary:
    """Parameters per stage of a model, a ``.keras`` file or a run directory."""
    from resnet_ft.models.params import summarize as count

    if isinstance(model, str | Path):
        model = load_model(model_file(model))
    return count(model)
