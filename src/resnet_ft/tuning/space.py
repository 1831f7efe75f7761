"""The search space: which head settings a sweep tries, and in which ranges.

Each setting is a ``TrainConfig`` field, so a trial's parameters are a
config layer as they are: ``best.yaml`` is the base config with the best
trial's layer on top, validated by the same ``make_config`` as every config.
Ranges are the ones that matter for a head on frozen pooled features:
learning rates over three decades, dropout up to 0.7, the head's kind and,
for a hidden layer, 128 to 1024 units, 5 to 30 epochs (a head on cached
features converges within them; wider heads and longer runs cost trial time
and did not score better).
"""

from __future__ import annotations

from typing import Any

from resnet_ft.config.sections import CLASS_WEIGHTS, OPTIMIZERS
from resnet_ft.models.head import HEADS, HeadSpec

#: The tuned config fields, in trials.csv column order.
PARAMETERS = ("lr", "dropout", "head", "head_units", "label_smoothing", "weight_decay",
              "optimizer", "epochs", "class_weight")
UNITS = (128, 256, 512, 1024)


def suggest(trial: Any) -> dict[str, Any]:
    """The trial's settings, drawn by the study's sampler (an ``optuna.Trial``)."""
    head = trial.suggest_categorical("head", tuple(HEADS))
    hidden = len(HeadSpec(1, head).widths) > 1  # units matter only where there is a hidden layer
    return {
        "lr": trial.suggest_float("lr", 1e-5, 1e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.7),
        "head": head,
        **({"head_units": trial.suggest_categorical("head_units", UNITS)} if hidden else {}),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        "optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
        "epochs": trial.suggest_int("epochs", 5, 30),
        "class_weight": trial.suggest_categorical("class_weight", CLASS_WEIGHTS),
    }
