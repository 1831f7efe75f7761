"""One optimizer step and one validation pass: the arithmetic of training, for any phase.

Cached and online inputs, one device or many replicas, head-only or unfrozen
stages, labels alone or a teacher's soft targets as well: all of them go
through the same step, so they train the same model.

Distillation (Hinton et al. 2015) adds the teacher's probabilities at
temperature T to a batch. Per image the loss is
``alpha * CE(label) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``; an image
without a label (label -1) has the second term only. The T^2 keeps the soft
term's gradient on the scale of the label term's whatever T is: the gradient of
T^2 * KL with respect to the student's logits is ``T * (student_T - teacher_T)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from resnet_ft.config import TrainConfig
from resnet_ft.training.plan import PhasePlan


def make_optimizer(config: TrainConfig, learning_rate: Any) -> Any:
    """Adam, SGD with momentum 0.9, or AdamW; ``--weight-decay`` is decoupled in all three.

    float16 gradients underflow: under ``mixed_float16`` the optimizer scales the loss.
    """
    import keras

    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, weight_decay=decay)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, weight_decay=decay)
    if config.precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights; ``balanced`` = n / (classes * n_c), as in scikit-learn."""
    if mode != "balanced":
        return np.ones(num_classes, np.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


@dataclass(frozen=True)
class SoftLoss:
    """How a teacher's soft targets enter the loss: label weight ``alpha``, temperature."""

    alpha: float
    temperature: float


def distillation_term(teacher: Any, logits: Any, temperature: float) -> Any:
    """Per image ``T^2 * KL(teacher_T || student_T)``.

    ``teacher`` holds the teacher's probabilities at temperature T; the
    student's are ``softmax(logits / T)`` of its own logits.
    """
    import tensorflow as tf

    student = tf.nn.log_softmax(logits / temperature)
    teacher = tf.cast(teacher, student.dtype)
    kl = tf.reduce_sum(tf.math.xlogy(teacher, teacher) - teacher * student, axis=-1)
    return temperature**2 * kl


def train_step(model: Any, optimizer: Any, weights: np.ndarray, label_smoothing: float,
               strategy: Any, soft: SoftLoss | None = None) -> Any:
    """One optimizer step on a global batch, split across the strategy's replicas.

    Each replica sums its slice's losses and divides by the *global* batch size;
    the optimizer sums gradients across replicas, so every setup computes the
    gradient of the same batch mean. With ``soft`` the step takes the batch's
    teacher probabilities as a third argument (see the module docstring).
    """
    import keras
    import tensorflow as tf

    from resnet_ft.util.replicas import sharded

    loss_fn = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing, reduction="none")
    per_class = tf.constant(weights)

    def losses(logits: tf.Tensor, y: tf.Tensor, teacher: tf.Tensor | None) -> tf.Tensor:
        if teacher is None:  # every image has a label
            target = tf.one_hot(y, tf.shape(logits)[-1], dtype=logits.dtype)
            return loss_fn(target, logits) * tf.gather(per_class, y)
        label = tf.maximum(y, 0)  # unlabelled images: -1, masked out of the label term
        target = tf.one_hot(label, tf.shape(logits)[-1], dtype=logits.dtype)
        known = tf.cast(y >= 0, logits.dtype)
        hard = loss_fn(target, logits) * tf.gather(per_class, label) * known
        return soft.alpha * hard + (1 - soft.alpha) * distillation_term(
            teacher, logits, soft.temperature)

    def replica_step(x: tf.Tensor, y: tf.Tensor, size: tf.Tensor, teacher=None):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            total = tf.reduce_sum(losses(logits, y, teacher))
            loss = total / size
            if hasattr(optimizer, "scale_loss"):
                loss = optimizer.scale_loss(loss)  # unscaled again in apply_gradients
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, 1) == tf.cast(y, tf.int64), tf.float32))
        return total, correct

    @tf.function(reduce_retracing=True)
    def distributed(size: tf.Tensor, *batch):
        totals, corrects = strategy.run(replica_step, args=(*batch[:2], size, *batch[2:]))
        return (strategy.reduce("SUM", totals, axis=None),
                strategy.reduce("SUM", corrects, axis=None))

    def step(x, y: np.ndarray, teacher: np.ndarray | None = None):
        """``teacher``: the batch's teacher probabilities, given exactly when ``soft`` is."""
        if (teacher is None) != (soft is None):
            raise ValueError("teacher probabilities go with a SoftLoss, and only with one")
        size = tf.constant(len(y), tf.float32)
        batch = [np.asarray(x), y] + ([] if teacher is None else [np.asarray(teacher)])
        return distributed(size, *(sharded(strategy, part) for part in batch))

    return step


def evaluate(model: Any, source: Any, labels: np.ndarray,
             batch_size: int = 64) -> tuple[float, float, np.ndarray]:
    """Validation loss, accuracy and probabilities (batched, so memory stays flat).

    ``model`` outputs logits; the probabilities are their softmax, as the saved
    classifier computes it.
    """
    from keras import ops

    probs = np.concatenate([np.asarray(ops.softmax(model(x, training=False)), np.float32)
                            for x in source.validation_batches(batch_size)])
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(probs.argmax(1) == labels)), probs


def learning_rate(phase: PhasePlan) -> Any:
    """The phase's learning rate: a constant, or Keras' warm-up + cosine decay schedule."""
    import keras

    if not phase.cosine:
        return phase.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        0.0, phase.decay_steps, warmup_target=phase.learning_rate,
        warmup_steps=phase.warmup_steps)
