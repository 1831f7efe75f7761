"""``importance.png``: every completed trial's score against the two most influential settings.

Influence is Optuna's PED-ANOVA importance (no scikit-learn needed); with too
few trials for it, the first two settings are shown. Log-scale settings get
log axes; categorical ones are placed at their index with their names as ticks.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from resnet_ft.tuning.space import PARAMETERS
from resnet_ft.util.atomic import atomic_path

#: Completed trials needed before importances are estimated.
MIN_TRIALS = 4


def influential(study: Any, completed: list[Any]) -> list[str]:
    """Tuned settings, most influential first (declaration order when unknown)."""
    import optuna

    if len(completed) >= MIN_TRIALS:
        try:
            with warnings.catch_warnings():  # PED-ANOVA is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ranked = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
            ranked = [name for name in ranked if name in PARAMETERS]
            return ranked + [p for p in PARAMETERS if p not in ranked]
        except (ValueError, RuntimeError):  # e.g. every trial scored the same
            pass
    return list(PARAMETERS)


def plot_scores(study: Any, completed: list[Any], path: Path, metric: str) -> list[str]:
    """Write the scatter plot; return the two settings on its axes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    x_name, y_name = influential(study, completed)[:2]
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    points = axes.scatter([_position(t, x_name) for t in completed],
                          [_position(t, y_name) for t in completed],
                          c=[t.value for t in completed], cmap="viridis", edgecolors="black")
    figure.colorbar(points, ax=axes, label=metric)
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name)
    for name, axis, scale in ((x_name, axes.xaxis, axes.set_xscale),
                              (y_name, axes.yaxis, axes.set_yscale)):
        distribution = completed[0].distributions.get(name) if completed else None
        if getattr(distribution, "log", False):
            scale("log")
        choices = getattr(distribution, "choices", None)
        if choices is not None:
            axis.set_ticks(range(len(choices)), [str(c) for c in choices])
    axes.set_title(f"{len(completed)} trials: {metric} vs the two most influential settings")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
    return [x_name, y_name]


def _position(trial: Any, name: str) -> float:
    """A trial's value of ``name`` as a number (a categorical choice's index)."""
    value = trial.params.get(name)
    choices = getattr(trial.distributions.get(name), "choices", None)
    return float(choices.index(value)) if choices is not None else float(value)
