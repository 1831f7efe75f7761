"""k heads as one compiled model: ``train``'s step, batched over a fold axis.

Why not ``train``'s own loop per fold: a trial of a sweep is k heads of a few
hundred epochs-steps each, and a Keras step costs more in Python, dispatch and
unfused optimizer passes than in arithmetic (profiled: 3 folds of a 512-unit
head took 6 ms per fold and step, ~10 s per trial). Here every fold's head
is a slice of stacked variables ``(k, ...)``; one ``tf.function`` runs a
whole epoch (a ``tf.while_loop`` over steps: batched matmuls over the fold
axis, one gradient, and the optimizer step compiled by XLA into one pass per
variable), and it is traced once per shape and reused by every trial of that
shape. The optimizer touches every weight every step, so past the Python
overhead the cost is memory traffic: an unfused decay and Adam read and write
each weight ~4 times more than needed (measured: the decay alone cost as much
as Adam's update).

What it computes is ``train``'s step, operation for operation:

* Dropout masks are Keras' own: ``stateless_dropout`` seeded ``[layer seed,
  step]``, which is what a Keras ``Dropout`` layer's seed generator draws at
  its n-th call; a mask is drawn for the full batch and shared by the folds
  (a shorter last batch uses its leading rows: the stateless generator is
  counter-based, so a smaller draw is a prefix of a larger one).
* The loss is Keras' categorical cross-entropy on the logits (what Keras
  does for a softmax output), label smoothing as Keras applies it, times the
  class weight, summed and divided by the fold's batch size.
* Decoupled weight decay ``var - var * (wd * lr)`` (Keras: ``var * wd * lr``,
  the same to rounding) before the update, then Adam with Keras' formula and
  constants (``m += (g - m) * (1 - b1)``, ``v += (g^2 - v) * (1 - b2)``,
  ``var -= m * alpha / (sqrt(v) + eps)``, bias-corrected ``alpha``) or momentum
  SGD (``m = m * 0.9 - g * lr; var += m``). AdamW is Adam with the decay, as
  in Keras.

XLA may fuse a multiply and an add into one rounding, and batched matmuls may
sum in another order, so the numbers agree with ``train``'s to float32
rounding, not bit for bit (tested to 1e-5; :mod:`~resnet_ft.training.crossval.exact` on
why Adam can amplify that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Keras' defaults for the optimizers ``train`` builds (training/step.py).
BETA_1, BETA_2, EPSILON, MOMENTUM = 0.9, 0.999, 1e-7, 0.9
#: Keras multiplies by ``1 - beta`` computed in float64, then rounded to float32.
ONE_MINUS_BETA_1, ONE_MINUS_BETA_2 = float(np.float32(1 - BETA_1)), float(np.float32(1 - BETA_2))


@dataclass(frozen=True)
class Shape:
    """What one compiled kernel is specialised for; everything else is a runtime input.

    ``widths`` are the head's Dense widths (:attr:`~resnet_ft.models.head.HeadSpec.widths`):
    hidden layers with ReLU, then the logits.
    """

    folds: int
    channels: int
    widths: tuple[int, ...]
    batch: int
    optimizer: str  # "adam" (also adamw) or "sgd"
    dropout: bool
    decay: bool


@dataclass(frozen=True)
class Settings:
    """A trial's runtime values, as float32 scalars computed the way Keras computes them."""

    lr: float
    weight_decay: float
    dropout: float
    smooth_keep: float  # float32(1 - label_smoothing): Keras rounds the difference in float64
    smooth_add: float  # float32(label_smoothing) / float32(classes), in float32 as Keras does

    @classmethod
    def of(cls, config: Any, classes: int) -> Settings:
        smoothing = np.float32(config.label_smoothing)
        return cls(config.lr, config.weight_decay, config.dropout,
                   float(np.float32(1.0 - config.label_smoothing)),
                   float(smoothing / np.float32(classes)))


class StackedHeads:
    """Stacked head variables, optimizer slots and the compiled epoch and predict functions."""

    def __init__(self, shape: Shape) -> None:
        import tensorflow as tf

        self.shape = shape
        k, inputs = shape.folds, (shape.channels, *shape.widths[:-1])
        self.weights = [tf.Variable(tf.zeros(s)) for fan_in, width in zip(inputs, shape.widths,
                                                                          strict=True)
                        for s in ((k, fan_in, width), (k, width))]
        slots = 2 if shape.optimizer == "adam" else 1
        self.slots = [[tf.Variable(tf.zeros_like(w)) for w in self.weights] for _ in range(slots)]
        self.iterations = tf.Variable(0, dtype=tf.int64)
        self.train_epoch = tf.function(self._train_epoch)
        self._update = tf.function(self._fused_update, jit_compile=True)
        self.predict = tf.function(self._predict)

    def reset(self, weights: list[np.ndarray]) -> None:
        """Every fold starts from ``weights`` (one head's), with fresh optimizer state."""
        for variable, value in zip(self.weights, weights, strict=True):
            variable.assign(np.broadcast_to(value, variable.shape))
        for slot in (s for slots in self.slots for s in slots):
            slot.assign(np.zeros(slot.shape, np.float32))
        self.iterations.assign(0)

    def _forward(self, x: Any, masks: tuple[Any, ...] | None) -> Any:
        """Logits ``(k, rows, classes)``; ``masks``: one dropout mask per Dense layer's input."""
        import tensorflow as tf

        layers = len(self.shape.widths)
        for index in range(layers):
            if masks is not None:
                x = x * masks[index]
            kernel, bias = self.weights[2 * index], self.weights[2 * index + 1]
            x = tf.matmul(x, kernel) + bias[:, None, :]
            if index < layers - 1:
                x = tf.nn.relu(x)
        return x

    def _masks(self, rate: Any, seeds: Any, step: Any) -> tuple[Any, ...] | None:
        """The Keras Dropout layers' masks at their ``step``-th call (see the module doc)."""
        import tensorflow as tf

        if not self.shape.dropout:
            return None
        inputs = (self.shape.channels, *self.shape.widths[:-1])
        return tuple(tf.nn.experimental.stateless_dropout(
            tf.ones((self.shape.batch, width)), rate, seed=tf.stack([seeds[i], step]))
            for i, width in enumerate(inputs))

    def _train_epoch(self, features: Any, labels: Any, batches: Any, weights: Any,
                     class_weights: Any, settings: Any, seeds: Any, first_step: Any) -> None:
        """One epoch: ``batches`` (steps, k, batch, 2) are (sample, view) rows, ``weights``
        (steps, k, batch) 1 for real rows and 0 for padding. ``settings`` = (lr, weight
        decay, dropout, smoothing keep, smoothing add)."""
        import tensorflow as tf

        lr, decay, rate, keep, add = tf.unstack(settings)
        for step in tf.range(tf.shape(batches)[0]):
            x = tf.gather_nd(features, batches[step])
            y = tf.gather(labels, batches[step][..., 0])
            mask = weights[step]
            with tf.GradientTape() as tape:
                logits = self._forward(x, self._masks(rate, seeds, first_step + step))
                target = tf.one_hot(y, self.shape.widths[-1]) * keep + add
                losses = tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)
                totals = tf.reduce_sum(losses * tf.gather(class_weights, y, batch_dims=1) * mask,
                                       axis=1)
                loss = tf.reduce_sum(totals / tf.reduce_sum(mask, axis=1))
            self._apply(tape.gradient(loss, self.weights), lr, decay)

    def _apply(self, grads: list[Any], lr: Any, decay: Any) -> None:
        """Keras' optimizer step: decoupled decay, the update, then ``iterations += 1``."""
        import tensorflow as tf

        self._update(grads, lr, decay, tf.cast(self.iterations + 1, tf.float32))
        self.iterations.assign_add(1)

    def _fused_update(self, grads: list[Any], lr: Any, decay: Any, step: Any) -> None:
        """Decay and update of every variable, compiled by XLA into one pass over each
        (the optimizer touches every weight every step: memory traffic is the cost)."""
        import tensorflow as tf

        for index, (variable, grad) in enumerate(zip(self.weights, grads, strict=True)):
            value = variable - variable * (decay * lr) if self.shape.decay else variable
            if self.shape.optimizer == "adam":
                m, v = self.slots[0][index], self.slots[1][index]
                alpha = lr * tf.sqrt(1 - tf.pow(BETA_2, step)) / (1 - tf.pow(BETA_1, step))
                m.assign(m + (grad - m) * ONE_MINUS_BETA_1)
                v.assign(v + (tf.square(grad) - v) * ONE_MINUS_BETA_2)
                variable.assign(value - (m * alpha) / (tf.sqrt(v) + EPSILON))
            else:
                accum = self.slots[0][index]
                accum.assign(accum * MOMENTUM - grad * lr)
                variable.assign(value + accum)

    def _predict(self, features: Any, rows: Any) -> Any:
        """Probabilities ``(k, rows, classes)`` of each fold's head on its rows (inference)."""
        import tensorflow as tf

        return tf.nn.softmax(self._forward(tf.gather(features, rows), None))
