"""Training configuration: defaults, YAML files, command-line overrides, validation.

One dataclass is the single source of truth for option names, defaults, help
texts and accepted ranges (field metadata, see :func:`setting`); the command
line's ``train`` options are generated from it, and ``distill``'s from
:class:`DistillConfig`, which adds the teacher and the soft loss to it. A YAML
file sets any field; options given on the command line win; unknown keys,
wrong types and out-of-range values are errors that name the key and the
accepted range (and :meth:`TrainConfig.check` those that involve several). The
fully resolved config is written to the run directory, and
``--config RUN_DIR/config.yaml`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from resnet_ft.errors import InputError
from resnet_ft.models.precision import PRECISIONS, resolve_precision
from resnet_ft.training.distribute import STRATEGIES

RESIZE_MODES = ("crop", "squash")
TRAINABLE_MODES = ("head", "block4", "block3", "block2", "block1", "all")
AUGMENTATIONS = ("flip", "crop", "rotate", "zoom", "color")
OPTIMIZERS = ("adam", "sgd", "adamw")
CLASS_WEIGHTS = ("none", "balanced")


def setting(default: Any, help: str, *, check: Callable[[Any], bool] | None = None,
            accepted: str = "", cli: str = "option", shown: str | None = None,
            note: str = "", off: tuple[str, Any] | None = None, path: bool = False,
            flag: str | None = None) -> Any:
    """A config field with everything the CLI and the validator need to know about it.

    ``help`` is the option's help text, to which ``--help`` appends the default
    (or ``shown`` in its place) and ``note``; ``check``/``accepted`` validate a value and
    word the error; ``cli`` says how the command line sets it: ``option``
    (``--name VALUE``), ``argument`` (positional), ``flag`` (``--name``
    turns it on) or ``none``; ``off = (help, value)`` adds a ``--no-name``
    flag that sets ``value``. ``path`` values are typed as paths on the
    command line and stored as strings. ``flag`` names the option when it
    should not be the field's name (``--student`` sets ``backbone``).
    """
    return field(default=default, metadata={
        "help": help, "check": check, "accepted": accepted, "cli": cli, "shown": shown,
        "note": note, "off": off, "path": path, "flag": flag,
    })


def _one_of(choices: tuple[str, ...]) -> dict[str, Any]:
    return {"check": lambda v: v in choices, "accepted": f"one of {', '.join(choices)}"}


_POSITIVE_INT = {"check": lambda v: v >= 1, "accepted": "an integer >= 1"}
_POSITIVE = {"check": lambda v: v > 0 and math.isfinite(v), "accepted": "a number > 0"}
_FRACTION = {"check": lambda v: 0 <= v < 1, "accepted": "a number in [0, 1)"}
_COUNT = {"check": lambda v: v >= 0, "accepted": "an integer >= 0"}


@dataclass(frozen=True)
class TrainConfig:
    """Every training option. Defaults follow the reference tutorial where it was right."""

    #: Fields set by positional command-line arguments, in their order.
    ARGUMENTS: ClassVar[tuple[str, ...]] = ("data_dir",)

    data_dir: str = setting("", "Class-per-folder images (or data_dir in --config)",
                            cli="argument", path=True)
    backbone: str = setting("", "Backbone .keras from convert", path=True)
    val_dir: str | None = setting(None, "Separate validation folder", path=True)
    split: str | None = setting(
        None, "A split.csv (file,label,subset) to train on, such as doctor --fix-split writes",
        path=True)
    epochs: int = setting(20, "Epochs", **_POSITIVE_INT)
    batch_size: int = setting(16, "Batch size", **_POSITIVE_INT)
    lr: float = setting(2e-4, "Adam learning rate", **_POSITIVE)
    image_size: int = setting(224, "Input size in pixels", check=lambda v: 32 <= v <= 4096,
                              accepted="an integer in [32, 4096]")
    resize: str = setting("crop", "crop (centre crop) or squash", **_one_of(RESIZE_MODES))
    dropout: float = setting(0.5, "Dropout rate in the head", **_FRACTION)
    head_units: int = setting(1024, "Hidden Dense units", **_POSITIVE_INT)
    val_split: float = setting(0.1, "Validation fraction", check=lambda v: 0 < v < 1,
                               accepted="a number in (0, 1)")
    seed: int = setting(0, "Random seed")
    augment: tuple[str, ...] = setting(
        ("flip",), f"Augmentations, comma-separated: {', '.join(AUGMENTATIONS)}",
        note="Only flip keeps the feature cache.", off=("No augmentation", "none"))
    cache: bool = setting(True, "Use the feature cache", cli="none",
                          off=("Run the backbone every epoch (slow baseline)", False))
    cache_dir: str | None = setting(None, "Feature cache directory", path=True)
    early_stopping: int = setting(
        0, "Stop after N epochs without val_loss improvement", shown="0: off",
        check=lambda v: v >= 0, accepted="an integer >= 0 (0 turns it off)")
    strict: bool = setting(False, "Undecodable images are an error", cli="flag")
    trainable: str = setting(
        "head", "What trains: head, or unfreeze from block4|block3|block2|block1|all to the top",
        **_one_of(TRAINABLE_MODES))
    train_bn: bool = setting(False, "Update BN statistics of unfrozen stages", cli="flag")
    head_epochs: int = setting(5, "Phase-1 head epochs before unfreezing",
                               check=lambda v: v >= 0, accepted="an integer >= 0")
    fine_tune_lr: float | None = setting(None, "Phase-2 peak learning rate", shown="lr/10",
                                         **_POSITIVE)
    label_smoothing: float = setting(0.0, "Label smoothing", **_FRACTION)
    class_weight: str = setting("none", "none or balanced (weights n / (classes * n_c))",
                                **_one_of(CLASS_WEIGHTS))
    optimizer: str = setting("adam", "adam, sgd or adamw", **_one_of(OPTIMIZERS))
    weight_decay: float = setting(0.0, "Decoupled weight decay",
                                  check=lambda v: v >= 0 and math.isfinite(v),
                                  accepted="a number >= 0")
    precision: str = setting(
        "auto", "auto (bfloat16 on CPUs with AMX or AVX512-BF16, float16 on GPUs, else "
        "float32), float32, mixed_float16 or mixed_bfloat16",
        note="Saved models are float32 whatever the run computed in.", **_one_of(PRECISIONS))
    strategy: str = setting(
        "auto", "auto, one-device, mirrored (all local GPUs) or multi-worker (TF_CONFIG)",
        note="--batch-size is per replica.", **_one_of(STRATEGIES))
    prune_head: float = setting(
        0.0, "Fraction of the head's hidden units to remove (structured pruning)", shown="0: off",
        note="Units with the smallest L1 norm of outgoing weights go first.", **_FRACTION)
    prune_rounds: int = setting(4, "Pruning rounds, each removing an equal share",
                                **_POSITIVE_INT)
    prune_epochs: int = setting(2, "Head fine-tuning epochs on cached features after each round",
                                **_COUNT)

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

    def resolved(self) -> tuple[TrainConfig, str]:
        """This config with ``precision: auto`` decided for this machine, and why.

        The run records the decided precision in its config.yaml, so a rerun
        from that file computes the same way even on another machine.
        """
        precision, why = resolve_precision(self.precision)
        return dataclasses.replace(self, precision=precision), why

    def check(self) -> None:
        """Checks that involve several fields (each field's own range is checked on its own)."""
        if self.prune_head and round(self.head_units * self.prune_head) == 0:
            raise InputError(f"config: prune_head {self.prune_head} removes no unit of a "
                             f"{self.head_units}-unit head; raise it or head_units")


@dataclass(frozen=True)
class DistillConfig(TrainConfig):
    """Every ``distill`` option: a training run of the student, plus the teacher and the loss.

    Loss per labelled image: ``alpha`` x cross-entropy(label) + (1 - alpha) x T^2 x
    KL(teacher_T || student_T), T = ``temperature``; unlabelled images have the second
    term only. The defaults (alpha 0.1, T 4) are justified in the README.
    """

    ARGUMENTS: ClassVar[tuple[str, ...]] = ("teacher", "data_dir")

    backbone: str = setting("", "Student backbone .keras from convert (backbone in --config)",
                            path=True, flag="student")
    teacher: str = setting("", "Trained teacher run directory (or teacher in --config)",
                           cli="argument", path=True)
    alpha: float = setting(0.1, "Weight of the label loss; 1 - alpha weighs the teacher's",
                           check=lambda v: 0 <= v <= 1, accepted="a number in [0, 1]",
                           note="1: labels only.")
    temperature: float = setting(4.0, "Softmax temperature of the soft loss", **_POSITIVE)
    unlabeled: str | None = setting(
        None, "Unlabelled images (any layout): the teacher labels them softly", path=True)
    baseline: bool = setting(
        False, "Also train the student on labels alone and report it", cli="flag",
        note="Cheap: it reuses the cached features; written to RUN_DIR/baseline.")

    def check(self) -> None:
        """The training checks, and unlabelled images need a soft term to learn from."""
        super().check()
        if self.unlabeled and self.alpha == 1:
            raise InputError("config: unlabeled images need alpha < 1 (at alpha 1 the "
                             "teacher's soft labels carry no weight)")

    def student(self) -> TrainConfig:
        """The same run without a teacher: what ``--baseline`` trains."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})


Config = TypeVar("Config", bound=TrainConfig)


@functools.cache
def _fields(kind: type[TrainConfig]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(kind)}


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


def _coerce(key: str, value: Any, config: type[TrainConfig]) -> Any:
    if key == "augment":
        return _augmentations(value)
    kind = _fields(config)[key].type
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


def make_config(*layers: dict[str, Any], kind: type[Config] = TrainConfig) -> Config:
    """Merge option layers (later wins; ``None`` means "not given") and validate.

    ``kind`` is the config class: :class:`TrainConfig` or :class:`DistillConfig`.
    """
    known = _fields(kind)
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in known:
                raise InputError(f"config: unknown key {key!r} (known keys: {', '.join(known)})")
            if value is not None:
                merged[key] = _coerce(key, value, kind)
    for key, value in merged.items():
        check = known[key].metadata["check"]
        if check is not None and value is not None and not check(value):
            accepted = known[key].metadata["accepted"]
            raise InputError(f"config: {key} must be {accepted} (got {value!r})")
    config = kind(**merged)
    config.check()
    return config


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
