"""The classification head: one spec, from which every trainer and tool derives its head.

A head maps pooled features (N, 2048) to class *logits*; the softmax is
applied once, where the classifier is assembled (:func:`assemble`), so the
loss, distillation and Grad-CAM work on logits and nothing replays a last
layer to undo a softmax. The head kinds are rows of :data:`HEADS`:

* ``mlp`` (default): Dropout -> Dense(units, ReLU) -> Dropout -> Dense(N). The
  ReLU matters: two stacked Dense layers without an activation collapse into
  one linear map (the reference tutorial's bug).
* ``linear``: Dropout -> Dense(N), a linear probe.

:class:`HeadSpec` describes a head by its kind, width and dropout; its
:attr:`~HeadSpec.widths` (the Dense layers' widths, ReLU between them) are
all that ``train``'s step, the sweep's stacked trainer, doctor's fold heads,
pruning and distillation need, so a new kind is one row here.

The head is its own small model over pooled features, so it can be trained
on cached features; the saved classifier wires the *same* layer objects after
the frozen backbone (:func:`assemble`). A saved classifier comes apart again
into backbone and head (:func:`split_classifier`): how a trained run serves as
a distillation teacher. Classifiers saved before heads emitted logits end in
``head.probs`` (Dense with softmax); :func:`logits` reads both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_ft.errors import InputError
from resnet_ft.models.families import FEATURE_CHANNELS

if TYPE_CHECKING:
    import keras

HIDDEN, LOGITS = "head.dense", "head.logits"
#: The last layer of heads saved before the softmax moved out of the head (softmax inside).
LEGACY_OUTPUT = "head.probs"
#: The classifier's softmax layer after the head.
PROBS = "probs"


@dataclass(frozen=True)
class HeadKind:
    """One kind of head: the widths of its hidden layers, and a line for ``--help``."""

    hidden: Callable[[HeadSpec], tuple[int, ...]]
    description: str


HEADS: dict[str, HeadKind] = {
    "mlp": HeadKind(lambda spec: (spec.units,), "Dense(units, ReLU), then Dense N"),
    "linear": HeadKind(lambda spec: (), "Dense N on the pooled features"),
}


@dataclass(frozen=True)
class HeadSpec:
    """A head: its kind, hidden width, dropout rate and number of classes."""

    classes: int
    kind: str = "mlp"
    units: int = 1024
    dropout: float = 0.5

    @property
    def widths(self) -> tuple[int, ...]:
        """Output width of every Dense layer, in order (ReLU after all but the last)."""
        return (*HEADS[self.kind].hidden(self), self.classes)

    def with_units(self, units: int) -> HeadSpec:
        """The same head with ``units`` hidden units (what a pruning round leaves)."""
        return replace(self, units=units)

    def build(self, channels: int = FEATURE_CHANNELS) -> keras.Model:
        """Pooled features (N, channels) -> logits (N, classes), in float32.

        float32 whatever the run's precision: the head is 2 M multiply-adds per
        image (the backbone is 8 G), so reduced precision would save nothing, and
        in bfloat16 its 8-bit mantissa makes training noisy enough that two runs on
        nearly the same features end up predicting differently.
        """
        import keras
        from keras import layers

        stack: list[Any] = [keras.Input((channels,), name="features")]
        widths = self.widths
        for index, width in enumerate(widths, start=1):
            last = index == len(widths)
            stack.append(layers.Dropout(self.dropout, dtype="float32",
                                        name=f"head.dropout{index}"))
            stack.append(layers.Dense(width, activation=None if last else "relu",
                                      dtype="float32", name=dense_name(index, last)))
        return keras.Sequential(stack, name="head")


def dense_name(index: int, last: bool) -> str:
    """Name of the ``index``-th Dense layer (1-based): the logits, or a hidden layer."""
    if last:
        return LOGITS
    return HIDDEN if index == 1 else f"{HIDDEN}{index}"


def spec_of(head: keras.Model) -> HeadSpec:
    """The spec of a built head (also of a legacy one), read off its layers."""
    dense = [layer for layer in head.layers if hasattr(layer, "units")]
    dropout = next((layer.rate for layer in head.layers if hasattr(layer, "rate")), 0.0)
    kind = next(k for k, row in HEADS.items()
                if len(row.hidden(HeadSpec(1, k, 1))) == len(dense) - 1)
    units = int(dense[0].units) if len(dense) > 1 else 0
    return HeadSpec(int(dense[-1].units), kind, units or 1, float(dropout))


def build_head(num_classes: int, *, units: int, dropout: float, kind: str = "mlp"
               ) -> keras.Model:
    """The head of ``kind`` for ``num_classes`` classes (see :meth:`HeadSpec.build`)."""
    return HeadSpec(num_classes, kind, units, dropout).build()


def assemble(
    backbone: keras.Model,
    head: keras.Model,
    image_size: int,
    trainable: str = "head",
    *,
    train_bn: bool = False,
) -> keras.Model:
    """Backbone (inference mode) + pooling + head + softmax, taking raw RGB images.

    ``trainable`` records which stages were fine-tuned, so ``summary`` of the
    saved model reports the trained/frozen split of the run.
    """
    import keras
    from keras import layers

    from resnet_ft.models.unfreeze import set_trainable

    set_trainable(backbone, trainable, train_bn=train_bn)
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    features = backbone(pixels, training=False)
    pooled = layers.GlobalAveragePooling2D(name="head.pool")(features)
    scores = head(pooled)
    if not _is_legacy(head):
        scores = layers.Softmax(dtype="float32", name=PROBS)(scores)
    return keras.Model(pixels, scores, name="classifier")


def split_classifier(classifier: keras.Model) -> tuple[keras.Model, keras.Model]:
    """``(backbone, head)`` of a classifier built by :func:`assemble` (the same layer objects)."""
    nested = {layer.name: layer for layer in classifier.layers if getattr(layer, "layers", None)}
    head = nested.pop("head", None)
    if head is None or len(nested) != 1:
        raise InputError(f"{classifier.name} is not a resnet-ft classifier (backbone + head)")
    return next(iter(nested.values())), head


def _is_legacy(head: keras.Model) -> bool:
    return any(layer.name == LEGACY_OUTPUT for layer in head.layers)


def logits(head: keras.Model, features: Any) -> Any:
    """The head's logits (inference mode) for pooled ``features``: a tensor.

    A legacy head applies its softmax inside its last layer, so that layer's
    kernel and bias are applied here instead; every other head outputs logits.
    """
    from keras import ops

    if not _is_legacy(head):
        return head(features, training=False)
    hidden = features
    for layer in head.layers[:-1]:
        hidden = layer(hidden, training=False)
    last = head.layers[-1]
    return ops.matmul(hidden, last.kernel) + last.bias


def probabilities(head: keras.Model, features: np.ndarray) -> np.ndarray:
    """Class probabilities (float32) of pooled ``features``, as the saved classifier computes."""
    from keras import ops

    return np.asarray(ops.softmax(logits(head, np.asarray(features, np.float32))), np.float32)


def keep_units(head: keras.Model, keep: np.ndarray) -> keras.Model:
    """A new head with only the hidden units ``keep`` (indices), weights copied.

    Dropping a unit removes its column of the hidden kernel, its bias and its
    row of the output kernel: the new head computes exactly what the old one
    computes with those units silenced, and it is genuinely smaller.
    """
    keep = np.sort(np.asarray(keep, np.int64))
    spec = spec_of(head)
    if len(spec.widths) != 2:
        raise InputError(f"pruning removes hidden units; a {spec.kind} head has none")
    dense = [layer for layer in head.layers if hasattr(layer, "units")]
    hidden, output = dense[0], dense[-1]
    smaller = spec.with_units(len(keep)).build(int(hidden.kernel.shape[0]))
    kernel, bias = hidden.get_weights()
    smaller.get_layer(HIDDEN).set_weights([kernel[:, keep], bias[keep]])
    kernel, bias = output.get_weights()
    smaller.get_layer(LOGITS).set_weights([kernel[keep], bias])
    return smaller
