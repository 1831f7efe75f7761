"""A trained run directory as its readers see it: where the model, labels and split live.

``train`` writes a run directory; ``predict``, ``evaluate``, ``export``,
``summary`` (and later tools) read it. Its file names and the checks that a
directory really is a finished run live here, once, so every reader fails
the same way on the same broken directory.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from resnet_ft.errors import InputError
from resnet_ft.models.files import load_model

if TYPE_CHECKING:
    import keras

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
SPLIT_FILE = "split.csv"


def model_path(path: str | Path) -> Path:
    """The model file for ``path``: the file itself, or ``RUN_DIR/model.keras``."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def require_run(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, when it exists and holds a trained model; else a one-line error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    if not model_path(run_dir).is_file():
        raise InputError(f"no trained model in {run_dir} (missing {MODEL_FILE})")
    return run_dir


def load_classifier(run_dir: str | Path) -> tuple[keras.Model, list[str]]:
    """A trained run's model (pixels in [0, 255] -> probabilities) and its labels."""
    run_dir = require_run(run_dir)
    return load_model(model_path(run_dir)), read_labels(run_dir)


def read_labels(run_dir: Path) -> list[str]:
    """Class names in output order."""
    try:
        labels = json.loads((run_dir / LABELS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {run_dir / LABELS_FILE}: {exc}") from exc
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InputError(f"{run_dir / LABELS_FILE} must be a JSON list of class names")
    return labels


def split_files(run_dir: Path, subset: str) -> list[Path]:
    """The run's ``train`` or ``val`` image files, as recorded in ``split.csv``."""
    path = run_dir / SPLIT_FILE
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [Path(row["file"]) for row in csv.DictReader(handle)
                    if row.get("subset") == subset]
    except (OSError, KeyError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
