"""Heads trained on in-memory features by ``train``'s own loop: for folds, trials and doctor.

A sweep's best trial must reproduce through ``train --config best.yaml``, so
a trial cannot have a training loop of its own: :func:`fit_head` builds the
head, optimizer and step with the functions ``train`` uses, in the same order
after the same seeding, and runs :func:`resnet_ft.training.loop.run_phases`
itself (same seeded batch order, view draws and dropout). Only the side
effects differ: no run directory, the best epoch's weights kept in memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.models.head import build_head
from resnet_ft.training.config import TrainConfig
from resnet_ft.training.loop import Phase, RunContext, new_state, run_phases
from resnet_ft.training.plan import make_plan
from resnet_ft.training.sources import ArraySource
from resnet_ft.training.step import class_weights, evaluate, make_optimizer, train_step


@dataclass
class Fit:
    """The best epoch (lowest validation loss, as ``train`` picks it) of one head."""

    val_loss: float
    val_accuracy: float
    best_epoch: int
    probs: np.ndarray  # validation probabilities at the best epoch


class _KeepBest:
    """Callback: a copy of the head's weights whenever an epoch improves val_loss."""

    def __init__(self) -> None:
        self.weights: list[np.ndarray] = []

    def __call__(self, ctx: RunContext, phase: Phase, row: dict[str, Any],
                 improved: bool) -> None:
        if improved:
            self.weights = phase.model.get_weights()


#: Called after every epoch with the run's state (``best_val_loss``, ``history``, ...).
EpochHook = Callable[[dict[str, Any]], None]


def fit_head(config: TrainConfig, classes: int, train: tuple[np.ndarray, np.ndarray],
             val: tuple[np.ndarray, np.ndarray], after_epoch: EpochHook | None = None) -> Fit:
    """Train the head of ``config`` on ``train = (features, labels)``; score it on ``val``.

    Features are ``(N, views, channels)`` like the feature cache's; labels are
    class indices. ``config.trainable`` must be ``head`` (one phase).
    ``after_epoch`` may raise to stop training (a pruned trial).
    """
    import keras
    import tensorflow as tf

    (x_train, y_train), (x_val, y_val) = train, val
    plan = make_plan(config, len(y_train))
    first = plan.phases[0]
    keras.utils.set_random_seed(config.seed)
    head = build_head(classes, units=config.head_units, dropout=config.dropout)
    phase = Phase(first, head, make_optimizer(config, first.learning_rate),
                  ArraySource(x_train, x_val))
    ctx = RunContext(
        config=config, run_dir=Path(), console=Console(file=io.StringIO()),
        labels=[str(c) for c in range(classes)],
        preprocessing=Preprocessing(config.image_size, config.resize), store=None,  # type: ignore[arg-type]
        state=new_state(), y_train=y_train, y_val=y_val, total_epochs=first.last_epoch,
        global_batch=config.batch_size,
    )
    weights = class_weights(y_train, classes, config.class_weight)
    strategy = tf.distribute.get_strategy()

    def prepare(current: Phase) -> None:
        current.optimizer.build(current.model.trainable_variables)
        current.step = train_step(current.model, current.optimizer, weights,
                                  config.label_smoothing, strategy)

    best = _KeepBest()
    callbacks: list[Any] = [best]
    if after_epoch is not None:
        callbacks.append(lambda run, _phase, _row, _improved: after_epoch(run.state))
    run_phases(ctx, [phase], callbacks, plan.inputs.epoch_views, prepare)
    head.set_weights(best.weights)
    loss, accuracy, probs = evaluate(head, phase.source, y_val)
    return Fit(loss, accuracy, ctx.state["best_epoch"], probs)


def cross_validate(config: TrainConfig, classes: int, features: np.ndarray,
                   labels: np.ndarray, folds: np.ndarray,
                   after_epoch: Callable[[int, dict[str, Any]], None] | None = None,
                   ) -> list[Fit]:
    """One head per fold, trained on the other folds.

    ``after_epoch(fold, state)`` is called after every epoch of every fold. The
    fits' ``probs`` are the out-of-fold probabilities of the samples with
    ``folds == k``.
    """
    fits = []
    for fold in range(int(folds.max()) + 1):
        held = folds == fold
        hook = None if after_epoch is None else (
            lambda state, fold=fold: after_epoch(fold, state))
        fits.append(fit_head(config, classes, (features[~held], labels[~held]),
                             (features[held], labels[held]), hook))
    return fits


def out_of_fold(fits: list[Fit], folds: np.ndarray, classes: int) -> np.ndarray:
    """The held-out probabilities of every sample, assembled from the folds' fits."""
    probs = np.zeros((len(folds), classes), np.float32)
    for fold, fit in enumerate(fits):
        probs[folds == fold] = fit.probs
    return probs
