"""Where things live inside a training run directory."""

from __future__ import annotations

from pathlib import Path

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"


def model_path(path: str | Path) -> Path:
    """The model file for ``path``: the file itself, or ``RUN_DIR/model.keras``."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path
