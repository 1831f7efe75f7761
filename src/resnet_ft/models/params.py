"""Parameter counts per stage: what is trained and what is frozen.

Counts come from the model's variables, never from formulas, so they are
exact for every family, depth and freeze setting. BatchNorm moving statistics
are non-trainable by nature; they get their own column so that "frozen"
(non-trainable weights of frozen layers) is not confused with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from resnet_ft.models.families import STAGES, stage_of

if TYPE_CHECKING:
    import keras

STAGE_ORDER = ("stem", *STAGES, "top", "head")
_BN_STATISTICS = ("moving_mean", "moving_variance")


@dataclass
class StageCount:
    """Parameters of one stage."""

    name: str
    trainable: int = 0
    non_trainable: int = 0
    bn_statistics: int = 0

    @property
    def total(self) -> int:
        """All parameters of the stage."""
        return self.trainable + self.non_trainable

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form including ``total``."""
        return {**asdict(self), "total": self.total}


@dataclass
class ParameterSummary:
    """Per-stage and total parameter counts of one model."""

    model: str
    stages: list[StageCount] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        """Trainable parameters in all stages."""
        return sum(s.trainable for s in self.stages)

    @property
    def non_trainable(self) -> int:
        """Non-trainable parameters (frozen weights and BN statistics)."""
        return sum(s.non_trainable for s in self.stages)

    @property
    def bn_statistics(self) -> int:
        """BatchNorm moving means and variances (part of ``non_trainable``)."""
        return sum(s.bn_statistics for s in self.stages)

    @property
    def total(self) -> int:
        """All parameters."""
        return self.trainable + self.non_trainable

    def to_dict(self) -> dict[str, Any]:
        """The ``summary --json`` document."""
        return {
            "model": self.model,
            "trainable": self.trainable,
            "non_trainable": self.non_trainable,
            "bn_statistics": self.bn_statistics,
            "total": self.total,
            "stages": [s.to_dict() for s in self.stages],
        }


def summarize(model: keras.Model) -> ParameterSummary:
    """Count the parameters per stage of a model.

    Nested models (the backbone inside a classifier) are counted by stage too.
    """
    counts: dict[str, StageCount] = {}
    for stage, layer in _leaf_layers(model, in_backbone=_is_backbone(model)):
        count = counts.setdefault(stage, StageCount(stage))
        for variable in layer.trainable_weights:
            count.trainable += _size(variable)
        for variable in layer.non_trainable_weights:
            count.non_trainable += _size(variable)
            if variable.name in _BN_STATISTICS:
                count.bn_statistics += _size(variable)
    stages = [counts[name] for name in STAGE_ORDER if name in counts]
    return ParameterSummary(model=model.name, stages=stages)


def _is_backbone(model: keras.Model) -> bool:
    return any(layer.name == "conv1" for layer in model.layers)


def _leaf_layers(model: keras.Model, *, in_backbone: bool):
    for layer in model.layers:
        if getattr(layer, "layers", None):
            yield from _leaf_layers(layer, in_backbone=_is_backbone(layer))
        elif layer.weights:
            yield (stage_of(layer.name) if in_backbone else "head"), layer


def _size(variable: Any) -> int:
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    return size
