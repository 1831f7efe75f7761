"""Training configuration: defaults, YAML files, command-line overrides, validation.

One dataclass is the single source of truth for option names, defaults and
accepted ranges. A YAML file sets any field; options given on the command
line win; unknown keys, wrong types and out-of-range values are errors that
name the key and the accepted range. The fully resolved config is written to
the run directory, and ``--config RUN_DIR/config.yaml`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from resnet_ft.distribute import STRATEGIES
from resnet_ft.errors import InputError
from resnet_ft.precision import PRECISIONS

RESIZE_MODES = ("crop", "squash")
TRAINABLE_MODES = ("head", "block4", "block3", "block2", "block1", "all")
AUGMENTATIONS = ("flip", "crop", "rotate", "zoom", "color")
OPTIMIZERS = ("adam", "sgd", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """Every training option. Defaults follow the reference tutorial where it was right."""

    data_dir: str = ""
    backbone: str = ""
    val_dir: str | None = None
    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-4
    image_size: int = 224
    resize: str = "crop"
    dropout: float = 0.5
    head_units: int = 1024
    val_split: float = 0.1
    seed: int = 0
    augment: tuple[str, ...] = ("flip",)
    cache: bool = True
    cache_dir: str | None = None
    early_stopping: int = 0
    strict: bool = False
    trainable: str = "head"
    train_bn: bool = False
    head_epochs: int = 5
    fine_tune_lr: float | None = None
    label_smoothing: float = 0.0
    class_weight: str = "none"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    precision: str = "float32"
    strategy: str = "auto"

    def to_yaml(self) -> str:
        """The resolved config as YAML, keys in declaration order."""
        data = dataclasses.asdict(self)
        data["augment"] = list(self.augment)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    @property
    def phase2_lr(self) -> float:
        """Peak learning rate when stages are unfrozen (default: lr / 10)."""
        return self.fine_tune_lr if self.fine_tune_lr is not None else self.lr / 10

    @property
    def cacheable(self) -> bool:
        """Features can be cached when flips are the only augmentation (two views per image)."""
        return set(self.augment) <= {"flip"}


#: key -> (check, description of the accepted range)
_RANGES: dict[str, tuple[Any, str]] = {
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0 and math.isfinite(v), "a number > 0"),
    "image_size": (lambda v: 32 <= v <= 4096, "an integer in [32, 4096]"),
    "resize": (lambda v: v in RESIZE_MODES, "one of crop, squash"),
    "dropout": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "head_units": (lambda v: v >= 1, "an integer >= 1"),
    "val_split": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "early_stopping": (lambda v: v >= 0, "an integer >= 0 (0 turns it off)"),
    "trainable": (lambda v: v in TRAINABLE_MODES, f"one of {', '.join(TRAINABLE_MODES)}"),
    "head_epochs": (lambda v: v >= 0, "an integer >= 0"),
    "fine_tune_lr": (lambda v: v > 0 and math.isfinite(v), "a number > 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "class_weight": (lambda v: v in ("none", "balanced"), "one of none, balanced"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "weight_decay": (lambda v: v >= 0 and math.isfinite(v), "a number >= 0"),
    "precision": (lambda v: v in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    "strategy": (lambda v: v in STRATEGIES, f"one of {', '.join(STRATEGIES)}"),
}
_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _augmentations(value: Any) -> tuple[str, ...]:
    """``true`` = flips, ``false``/``none`` = nothing, else a list or comma-separated names."""
    if isinstance(value, bool):
        return ("flip",) if value else ()
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InputError(f"config: augment must be true, false or a list of "
                         f"{', '.join(AUGMENTATIONS)} (got {value!r})")
    names = tuple(dict.fromkeys(v.strip().lower() for v in value))
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise InputError(f"config: augment must list names among {', '.join(AUGMENTATIONS)} "
                         f"(got {', '.join(unknown)})")
    return names


def _coerce(key: str, value: Any) -> Any:
    if key == "augment":
        return _augmentations(value)
    kind = _TYPES[key]
    optional = "None" in kind
    if value is None and optional:
        return None
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise InputError(f"config: {key} must be true or false (got {value!r})")
    if kind.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InputError(f"config: {key} must be an integer (got {value!r})")
    if kind.startswith("float"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise InputError(f"config: {key} must be a number (got {value!r})")
    if isinstance(value, str | Path):
        return str(value)
    raise InputError(f"config: {key} must be a string (got {value!r})")


def make_config(*layers: dict[str, Any]) -> TrainConfig:
    """Merge option layers (later wins; ``None`` means "not given") and validate."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in _TYPES:
                known = ", ".join(_TYPES)
                raise InputError(f"config: unknown key {key!r} (known keys: {known})")
            if value is not None:
                merged[key] = _coerce(key, value)
    for key, value in merged.items():
        if key in _RANGES:
            check, accepted = _RANGES[key]
            if not check(value):
                raise InputError(f"config: {key} must be {accepted} (got {value!r})")
    return TrainConfig(**merged)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file with ``yaml.safe_load`` (no arbitrary objects)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0]
        raise InputError(f"config {path} is not valid YAML: {detail}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InputError(f"config {path} must be a mapping of option names to values")
    return data
