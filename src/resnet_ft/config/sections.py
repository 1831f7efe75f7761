"""Training and distillation configs, assembled from sections.

A section is a frozen dataclass of related fields — data and preprocessing,
head, optimisation, runtime, pruning — and a config is the union of its
sections (dataclass inheritance keeps the fields flat). So a run's
``config.yaml`` and the command line stay flat (``lr: 0.0002``,
``--lr 2e-4``, old files load as they are), while each command takes the
sections it needs, ``--help`` groups the options by section, and code that
needs one idea asks for one section (:meth:`TrainConfig.head_spec`).

The fields are the single source of truth for option names, defaults, help texts and
accepted ranges (:func:`~resnet_ft.config.fields.setting`); the command line's options are
generated from them. The fully resolved config is written to the run directory, and
``--config RUN_DIR/config.yaml`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from resnet_ft.config.fields import (
    COUNT,
    FRACTION,
    POSITIVE,
    POSITIVE_INT,
    Config,
    merge_layers,
    one_of,
    setting,
    to_yaml,
)
from resnet_ft.config.reject import RejectSection
from resnet_ft.data.folders import Split, make_split
from resnet_ft.data.preprocessing import RESIZE_MODES, Preprocessing
from resnet_ft.errors import InputError
from resnet_ft.models.head import HEADS, HeadSpec
from resnet_ft.models.precision import PRECISIONS, resolve_precision

TRAINABLE_MODES = ("head", "block4", "block3", "block2", "block1", "all")
AUGMENTATIONS = ("flip", "crop", "rotate", "zoom", "color")
OPTIMIZERS = ("adam", "sgd", "adamw")
CLASS_WEIGHTS = ("none", "balanced")
STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")


@dataclass(frozen=True)
class DataSection:
    """Which images and backbone, how they are split, decoded, resized and cached."""

    TITLE: ClassVar[str] = "Data and preprocessing"

    data_dir: str = setting("", "Class-per-folder images (or data_dir in --config)",
                            cli="argument", path=True)
    backbone: str = setting("", "Backbone .keras from convert, or a preset name such as "
                            "slim/resnet_v1_101 (convert --list)", path=True)
    val_dir: str | None = setting(None, "Separate validation folder", path=True)
    split: str | None = setting(
        None, "A split.csv (file,label,subset) to train on, such as doctor --fix-split writes",
        path=True)
    val_split: float = setting(0.1, "Validation fraction", check=lambda v: 0 < v < 1,
                               accepted="a number in (0, 1)")
    seed: int = setting(0, "Random seed")
    image_size: int = setting(224, "Input size in pixels", check=lambda v: 32 <= v <= 4096,
                              accepted="an integer in [32, 4096]")
    resize: str = setting("crop", "crop (centre crop) or squash", **one_of(RESIZE_MODES))
    augment: tuple[str, ...] = setting(
        ("flip",), f"Augmentations, comma-separated: {', '.join(AUGMENTATIONS)}",
        note="Only flip keeps the feature cache.", off=("No augmentation", "none"))
    cache: bool = setting(True, "Use the feature cache", cli="none",
                          off=("Run the backbone every epoch (slow baseline)", False))
    cache_dir: str | None = setting(None, "Feature cache directory", path=True)
    strict: bool = setting(False, "Undecodable images are an error", cli="flag")

    @staticmethod
    def coerce_augment(value: Any) -> tuple[str, ...]:
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
            raise InputError(f"config: augment must list names among "
                             f"{', '.join(AUGMENTATIONS)} (got {', '.join(unknown)})")
        return names

    @property
    def preprocessing(self) -> Preprocessing:
        """The geometry every image goes through (and that travels with the model)."""
        return Preprocessing(self.image_size, self.resize)

    @property
    def cacheable(self) -> bool:
        """Features can be cached when flips are the only augmentation (two views per image)."""
        return set(self.augment) <= {"flip"}

    def data_split(self) -> Split:
        """The training/validation split this config describes (the one every command uses)."""
        return make_split(
            Path(self.data_dir), val_dir=Path(self.val_dir) if self.val_dir else None,
            val_split=self.val_split, seed=self.seed,
            split_file=Path(self.split) if self.split else None,
        )

    def require_sources(self) -> None:
        """A data directory and a backbone are needed by everything that reads images."""
        if not self.data_dir:
            raise InputError("no data directory given (DATA_DIR argument or data_dir in "
                             "--config)")
        if not self.backbone:
            raise InputError("no backbone given (--backbone or backbone in --config)")

    def backbone_file(self, *, fetch: bool = True) -> Path:
        """The path given, or a preset's conversion in the weights cache (made if ``fetch``)."""
        from resnet_ft.presets.cache import resolve_backbone  # fetching needs TensorFlow

        return resolve_backbone(self.backbone, self.cache_dir, fetch=fetch)


@dataclass(frozen=True)
class HeadSection:
    """The classification head on the pooled features (:mod:`resnet_ft.models.head`)."""

    TITLE: ClassVar[str] = "Head"

    head: str = setting("mlp", ", ".join(f"{name}: {kind.description}"
                                         for name, kind in HEADS.items()),
                        **one_of(tuple(HEADS)))
    head_units: int = setting(1024, "Hidden Dense units (mlp head)", **POSITIVE_INT)
    dropout: float = setting(0.5, "Dropout rate in the head", **FRACTION)

    def head_spec(self, classes: int) -> HeadSpec:
        """The head these settings describe, for ``classes`` classes."""
        return HeadSpec(classes, self.head, self.head_units, self.dropout)


@dataclass(frozen=True)
class OptimisationSection:
    """How long and how the head (and unfrozen stages) are trained."""

    TITLE: ClassVar[str] = "Optimisation"

    epochs: int = setting(20, "Epochs", **POSITIVE_INT)
    batch_size: int = setting(16, "Batch size", **POSITIVE_INT)
    lr: float = setting(2e-4, "Adam learning rate", **POSITIVE)
    optimizer: str = setting("adam", "adam, sgd or adamw", **one_of(OPTIMIZERS))
    weight_decay: float = setting(0.0, "Decoupled weight decay",
                                  check=lambda v: v >= 0 and math.isfinite(v),
                                  accepted="a number >= 0")
    label_smoothing: float = setting(0.0, "Label smoothing", **FRACTION)
    class_weight: str = setting("none", "none or balanced (weights n / (classes * n_c))",
                                **one_of(CLASS_WEIGHTS))
    early_stopping: int = setting(
        0, "Stop after N epochs without val_loss improvement", shown="0: off",
        check=lambda v: v >= 0, accepted="an integer >= 0 (0 turns it off)")
    trainable: str = setting(
        "head", "What trains: head, or unfreeze from block4|block3|block2|block1|all to the top",
        **one_of(TRAINABLE_MODES))
    train_bn: bool = setting(False, "Update BN statistics of unfrozen stages", cli="flag")
    head_epochs: int = setting(5, "Phase-1 head epochs before unfreezing",
                               check=lambda v: v >= 0, accepted="an integer >= 0")
    fine_tune_lr: float | None = setting(None, "Phase-2 peak learning rate", shown="lr/10",
                                         **POSITIVE)

    @property
    def phase2_lr(self) -> float:
        """Peak learning rate when stages are unfrozen (default: lr / 10)."""
        return self.fine_tune_lr if self.fine_tune_lr is not None else self.lr / 10


@dataclass(frozen=True)
class RuntimeSection:
    """What computes: the numeric precision and the distribution strategy."""

    TITLE: ClassVar[str] = "Runtime"

    precision: str = setting(
        "auto", "auto (bfloat16 on CPUs with AMX or AVX512-BF16, float16 on GPUs, else "
        "float32), float32, mixed_float16, mixed_bfloat16 or int8 (the frozen backbone "
        "quantised, OpenVINO)",
        note="Saved models are float32 whatever the run computed in.", **one_of(PRECISIONS))
    calibration_images: int = setting(
        256, "Training images int8 is calibrated on (stratified, seeded; never validation "
        "images)", **POSITIVE_INT)
    strategy: str = setting(
        "auto", "auto, one-device, mirrored (all local GPUs) or multi-worker (TF_CONFIG)",
        note="--batch-size is per replica.", **one_of(STRATEGIES))


@dataclass(frozen=True)
class PruningSection:
    """Structured pruning of the head's hidden layer after training."""

    TITLE: ClassVar[str] = "Pruning"

    prune_head: float = setting(
        0.0, "Fraction of the head's hidden units to remove (structured pruning)", shown="0: off",
        note="Units with the smallest L1 norm of outgoing weights go first.", **FRACTION)
    prune_rounds: int = setting(4, "Pruning rounds, each removing an equal share",
                                **POSITIVE_INT)
    prune_epochs: int = setting(2, "Head fine-tuning epochs on cached features after each round",
                                **COUNT)


# Bases are listed last section first: a dataclass takes its bases' fields in reverse order.
@dataclass(frozen=True)
class TrainConfig(RejectSection, PruningSection, RuntimeSection, OptimisationSection,
                  HeadSection, DataSection, Config):
    """Every training option. Defaults follow the reference tutorial where it was right."""

    SECTIONS: ClassVar[tuple[type, ...]] = (DataSection, HeadSection, OptimisationSection,
                                            RuntimeSection, PruningSection, RejectSection)
    ARGUMENTS: ClassVar[tuple[str, ...]] = ("data_dir",)

    def to_yaml(self) -> str:
        """The resolved config as YAML, keys in declaration order."""
        return to_yaml(self)

    def resolved(self) -> tuple[TrainConfig, str]:
        """This config with ``precision: auto`` decided for this machine, and why.

        The run records the decided precision in its config.yaml, so a rerun
        from that file computes the same way even on another machine.
        """
        precision, why = resolve_precision(self.precision)
        return dataclasses.replace(self, precision=precision), why

    def check(self) -> None:
        """Checks that involve several fields (each field's own range is checked on its own)."""
        if self.prune_head and self.head != "mlp":
            raise InputError(f"config: prune_head removes hidden units; the {self.head} head "
                             "has none (use head mlp)")
        if self.prune_head and round(self.head_units * self.prune_head) == 0:
            raise InputError(f"config: prune_head {self.prune_head} removes no unit of a "
                             f"{self.head_units}-unit head; raise it or head_units")


@dataclass(frozen=True)
class DistillationSection:
    """The teacher and the soft loss of a distillation run."""

    TITLE: ClassVar[str] = "Distillation"

    teacher: str = setting("", "Trained teacher run directory (or teacher in --config)",
                           cli="argument", path=True)
    alpha: float = setting(0.1, "Weight of the label loss; 1 - alpha weighs the teacher's",
                           check=lambda v: 0 <= v <= 1, accepted="a number in [0, 1]",
                           note="1: labels only.")
    temperature: float = setting(4.0, "Softmax temperature of the soft loss", **POSITIVE)
    unlabeled: str | None = setting(
        None, "Unlabelled images (any layout): the teacher labels them softly", path=True)
    baseline: bool = setting(
        False, "Also train the student on labels alone and report it", cli="flag",
        note="Cheap: it reuses the cached features; written to RUN_DIR/baseline.")


@dataclass(frozen=True)
class DistillConfig(DistillationSection, TrainConfig):
    """Every ``distill`` option: a training run of the student, plus the teacher and the loss.

    Loss per labelled image: ``alpha`` x cross-entropy(label) + (1 - alpha) x T^2 x
    KL(teacher_T || student_T), T = ``temperature``; unlabelled images have the second
    term only. The defaults (alpha 0.1, T 4) are justified in docs/commands/distill.md.
    """

    SECTIONS: ClassVar[tuple[type, ...]] = (*TrainConfig.SECTIONS, DistillationSection)
    ARGUMENTS: ClassVar[tuple[str, ...]] = ("teacher", "data_dir")

    backbone: str = setting("", "Student backbone .keras or preset (backbone in --config)",
                            path=True, flag="student")

    def check(self) -> None:
        """The training checks, and unlabelled images need a soft term to learn from."""
        super().check()
        if self.unlabeled and self.alpha == 1:
            raise InputError("config: unlabeled images need alpha < 1 (at alpha 1 the "
                             "teacher's soft labels carry no weight)")

    def student(self) -> TrainConfig:
        """The same run without a teacher: what ``--baseline`` trains."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})


Kind = TypeVar("Kind", bound=Config)


def make_config(*layers: dict[str, Any], kind: type[Kind] = TrainConfig) -> Kind:  # type: ignore[assignment]
    """Merge option layers (later wins; ``None`` means "not given") and validate.

    ``kind`` is the config class: :class:`TrainConfig` or :class:`DistillConfig`.
    """
    return merge_layers(kind, layers)
