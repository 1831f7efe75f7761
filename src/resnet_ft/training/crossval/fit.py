"""Heads trained on in-memory features as ``train`` trains them: for folds, trials and doctor.

A sweep's best trial must reproduce through ``train --config best.yaml``, so a
fold's head is trained exactly as ``train`` would train it on that fold's
training images: the head's initial weights and its dropout layers' seeds are
read off a head built by ``train``'s own head spec after the same
seeding; every epoch draws the same seeded batch order and views as
``train``'s loop (:func:`epoch_batches`); the step is ``train``'s step
(:mod:`~resnet_ft.training.crossval.stacked`); the best epoch is the one with the lowest
validation loss, scored by the same formula as ``train``'s ``evaluate``; and
early stopping stops a fold as ``train``'s callback would.

All folds of a call train together, one compiled epoch for the whole stack,
and report after every epoch, so a sweep can prune a trial after its first
epochs instead of after whole folds. Folds whose epochs have a different
number of steps (sizes straddling a multiple of the batch) form separate
stacks. The compiled kernels live in a :class:`HeadTrainer`; passing the same
trainer to every call (as a sweep does) traces each head shape once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from resnet_ft.config import TrainConfig
from resnet_ft.errors import NonFiniteError
from resnet_ft.training.crossval.stacked import Settings, Shape, StackedHeads
from resnet_ft.training.plan import make_plan
from resnet_ft.training.step import class_weights


@dataclass
class Fit:
    """The best epoch (lowest validation loss, as ``train`` picks it) of one head."""

    val_loss: float
    val_accuracy: float
    best_epoch: int
    probs: np.ndarray  # validation probabilities at the best epoch


#: Called after every epoch with each fold's best epoch so far; may raise (a pruned trial).
EpochHook = Callable[[int, list[Fit]], None]


class HeadTrainer:
    """What calls on the same data can share: compiled kernels by shape (tracing costs
    ~1 s a shape), initial heads (a Keras build costs ~0.15 s) and the features as
    tensors (a copy of the feature table)."""

    def __init__(self) -> None:
        self._kernels: dict[tuple[Shape, int], StackedHeads] = {}
        self._heads: dict[tuple[Any, ...], tuple[list[np.ndarray], np.ndarray]] = {}
        self._source: tuple[np.ndarray, int, tuple[Any, ...]] | None = None

    def kernel(self, shape: Shape, stack: int) -> StackedHeads:
        """The kernel of a call's ``stack``-th stack (stacks of one call must not share)."""
        if (shape, stack) not in self._kernels:
            self._kernels[shape, stack] = StackedHeads(shape)
        return self._kernels[shape, stack]

    def initial_head(self, config: TrainConfig, classes: int
                     ) -> tuple[list[np.ndarray], np.ndarray]:
        """The weights and dropout seeds of the head ``train`` would start from.

        They depend on the seed, the shape and whether dropout layers draw seeds
        (rate > 0), not on the rate itself.
        """
        key = (config.seed, config.head_spec(classes).widths, config.dropout > 0)
        if key not in self._heads:
            self._heads[key] = _initial_head(config, classes)
        return self._heads[key]

    def tensors(self, features: np.ndarray, labels: np.ndarray, views: int) -> tuple[Any, ...]:
        """(training views, first view, labels) as tensors, converted once per data set."""
        import tensorflow as tf

        if self._source is None or self._source[0] is not features or self._source[1] != views:
            self._source = (features, views, (tf.constant(features[:, :views]),
                                              tf.constant(features[:, 0]),
                                              tf.constant(labels.astype(np.int32))))
        return self._source[2]


def epoch_batches(seed: int, epoch: int, train_sets: list[np.ndarray], views: int,
                  batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's batches of every fold, as ``train``'s loop draws them.

    ``train_sets[f]`` are fold f's training rows (in feature order), all with
    the same number of steps. Returns ``(steps, folds, batch, 2)`` (row, view)
    pairs and ``(steps, folds, batch)`` weights, 0 on the padding of a short
    last batch.
    """
    steps = -(-len(train_sets[0]) // batch)
    pairs = np.zeros((steps * batch, len(train_sets), 2), np.int32)
    weights = np.zeros((steps * batch, len(train_sets)), np.float32)
    for fold, rows in enumerate(train_sets):
        rng = np.random.default_rng([seed, epoch])  # training/loop.py: _train_epoch
        order = rng.permutation(len(rows))
        flips = rng.integers(0, views, len(rows))
        pairs[: len(rows), fold] = np.stack([rows[order], flips[order]], axis=1)
        weights[: len(rows), fold] = 1.0
    shape = (steps, batch, len(train_sets))
    return (pairs.reshape(*shape, 2).transpose(0, 2, 1, 3),
            weights.reshape(shape).transpose(0, 2, 1))


def cross_validate(config: TrainConfig, classes: int, features: np.ndarray, labels: np.ndarray,
                   folds: np.ndarray, after_epoch: EpochHook | None = None,
                   trainer: HeadTrainer | None = None) -> list[Fit]:
    """One head per fold, trained on the samples of the other folds (``folds == -1``:
    always training), scored on its own; the fits' ``probs`` are the out-of-fold
    probabilities of the samples with ``folds == k``.

    ``features`` are ``(N, views, channels)`` like the feature cache's (any
    array-like: read once); labels are class indices.
    """
    features = np.asarray(features, np.float32)
    trainer = trainer or HeadTrainer()
    plan = make_plan(config, len(labels))
    held = [np.flatnonzero(folds == k) for k in range(int(folds.max()) + 1)]
    train_sets = [np.flatnonzero(folds != k) for k in range(len(held))]
    weights, seeds = trainer.initial_head(config, classes)
    tensors = trainer.tensors(features, labels, plan.inputs.epoch_views)
    stacks = [_Stack(trainer, index, config, classes, group, train_sets, held, labels, weights)
              for index, group in enumerate(_groups(train_sets, config.batch_size))]
    best: list[Fit | None] = [None] * len(held)
    stopped = np.zeros(len(held), bool)
    for epoch in range(1, plan.phases[0].last_epoch + 1):
        for stack in stacks:
            stack.train_epoch(epoch, plan.inputs.epoch_views, tensors, seeds)
            for fold, fit in stack.evaluate(epoch, tensors):
                if not math.isfinite(fit.val_loss):
                    raise NonFiniteError(f"non-finite validation loss ({fit.val_loss}) in fold "
                                         f"{fold + 1} after epoch {epoch}: the head diverged "
                                         f"at lr {config.lr:g}")
                if not stopped[fold] and (best[fold] is None
                                          or fit.val_loss < best[fold].val_loss):
                    best[fold] = fit
        patience = config.early_stopping  # training/callbacks.py: EarlyStopping
        stopped |= np.array([bool(patience) and epoch - f.best_epoch >= patience for f in best])
        if after_epoch is not None:
            after_epoch(epoch, list(best))
        if stopped.all():
            break
    return list(best)


def out_of_fold(fits: list[Fit], folds: np.ndarray, classes: int) -> np.ndarray:
    """The held-out probabilities of every sample, assembled from the folds' fits."""
    probs = np.zeros((len(folds), classes), np.float32)
    for fold, fit in enumerate(fits):
        probs[folds == fold] = fit.probs
    return probs


def _initial_head(config: TrainConfig, classes: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The weights and dropout seeds of the head ``train`` would start from."""
    import keras

    keras.utils.set_random_seed(config.seed)  # as training/run.py does before building it
    head = config.head_spec(classes).build()
    dropouts = [layer for layer in head.layers if isinstance(layer, keras.layers.Dropout)]
    seeds = [0] * len(dropouts)
    if config.dropout > 0:  # Keras casts a seed state to int32 by floormod (tf backend)
        seeds = [int(layer.seed_generator.state.numpy()[0]) % (2**31 - 2) for layer in dropouts]
    return head.get_weights(), np.array(seeds, np.int32)


def _groups(train_sets: list[np.ndarray], batch: int) -> list[list[int]]:
    """Folds with the same number of steps per epoch (they can share one stack)."""
    by_steps: dict[int, list[int]] = {}
    for fold, rows in enumerate(train_sets):
        by_steps.setdefault(-(-len(rows) // batch), []).append(fold)
    return list(by_steps.values())


class _Stack:
    """Some folds' heads in one compiled kernel: their data, schedule and step count."""

    def __init__(self, trainer: HeadTrainer, index: int, config: TrainConfig, classes: int,
                 folds: list[int], train_sets: list[np.ndarray], held: list[np.ndarray],
                 labels: np.ndarray, weights: list[np.ndarray]) -> None:
        import tensorflow as tf

        self.config, self.folds, self.labels = config, folds, labels
        self.train_sets = [train_sets[f] for f in folds]
        self.held = [held[f] for f in folds]
        self.kernel = trainer.kernel(Shape(
            len(folds), weights[0].shape[0], config.head_spec(classes).widths,
            config.batch_size, "sgd" if config.optimizer == "sgd" else "adam",
            config.dropout > 0, config.weight_decay > 0), index)
        self.kernel.reset(weights)
        self.class_weights = tf.constant(np.stack(
            [class_weights(labels[rows], classes, config.class_weight)
             for rows in self.train_sets]))
        rows = np.zeros((len(folds), max(len(h) for h in self.held)), np.int32)
        for index, fold_rows in enumerate(self.held):
            rows[index, : len(fold_rows)] = fold_rows
        self.rows = tf.constant(rows)
        settings = Settings.of(config, classes)
        self.settings = tf.constant([settings.lr, settings.weight_decay, settings.dropout,
                                     settings.smooth_keep, settings.smooth_add], tf.float32)
        self.step = 0

    def train_epoch(self, epoch: int, views: int, tensors: tuple[Any, ...],
                    seeds: np.ndarray) -> None:
        import tensorflow as tf

        batches, weights = epoch_batches(self.config.seed, epoch, self.train_sets, views,
                                         self.config.batch_size)
        self.kernel.train_epoch(tensors[0], tensors[2], batches, weights, self.class_weights,
                                self.settings, seeds, tf.constant(self.step, tf.int32))
        self.step += len(batches)

    def evaluate(self, epoch: int, tensors: tuple[Any, ...]) -> list[tuple[int, Fit]]:
        """Each fold's validation loss and accuracy (``train``'s formula) and probabilities."""
        probs = self.kernel.predict(tensors[1], self.rows).numpy()
        fits = []
        for index, rows in enumerate(self.held):
            fold_probs, truth = probs[index, : len(rows)], self.labels[rows]
            picked = np.clip(fold_probs[np.arange(len(rows)), truth], 1e-7, 1.0)
            fits.append((self.folds[index], Fit(
                float(-np.mean(np.log(picked))), float(np.mean(fold_probs.argmax(1) == truth)),
                epoch, fold_probs)))
        return fits
