"""The classification head and the full pixels -> probabilities model.

Head: global average pool -> Dropout -> Dense(units, ReLU) -> Dropout ->
Dense(N, softmax). The ReLU matters: two stacked Dense layers without an
activation collapse into one linear map (the reference tutorial's bug).

The head is its own small model over pooled features, so it can be trained
on cached features; the saved classifier wires the *same* layer objects
after the frozen backbone, so the weights trained on features are the
weights of the model that is saved. A saved classifier comes apart again
into backbone and head (:func:`split_classifier`), which is how a trained run
serves as a distillation teacher; :func:`keep_units` builds the smaller head
that structured pruning leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.errors import InputError
from resnet_ft.models.architectures import FEATURE_CHANNELS

if TYPE_CHECKING:
    import keras

HIDDEN, OUTPUT = "head.dense", "head.probs"


def build_head(num_classes: int, *, units: int, dropout: float) -> keras.Model:
    """Pooled features (N, 2048) -> class probabilities (N, num_classes), in float32.

    float32 whatever the run's precision: the head is 2 M multiply-adds per
    image (the backbone is 8 G), so reduced precision would save nothing, and
    in bfloat16 its 8-bit mantissa makes training noisy enough that two runs on
    nearly the same features end up predicting differently.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((FEATURE_CHANNELS,), name="features"),
            layers.Dropout(dropout, dtype="float32", name="head.dropout1"),
            layers.Dense(units, activation="relu", dtype="float32", name="head.dense"),
            layers.Dropout(dropout, dtype="float32", name="head.dropout2"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="head.probs"),
        ],
        name="head",
    )


def assemble(
    backbone: keras.Model,
    head: keras.Model,
    image_size: int,
    trainable: str = "head",
    *,
    train_bn: bool = False,
) -> keras.Model:
    """Backbone (inference mode) + pooling + head, taking raw RGB images.

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
    return keras.Model(pixels, head(pooled), name="classifier")


def split_classifier(classifier: keras.Model) -> tuple[keras.Model, keras.Model]:
    """``(backbone, head)`` of a classifier built by :func:`assemble` (the same layer objects)."""
    nested = {layer.name: layer for layer in classifier.layers if getattr(layer, "layers", None)}
    head = nested.pop("head", None)
    if head is None or len(nested) != 1:
        raise InputError(f"{classifier.name} is not a resnet-ft classifier (backbone + head)")
    return next(iter(nested.values())), head


def head_logits(head: keras.Model, features: np.ndarray) -> np.ndarray:
    """The head's scores before the softmax (inference mode), float64: (N, classes).

    Temperature-scaled probabilities need the logits; the head's last layer
    applies the softmax itself, so its kernel and bias are applied here.
    """
    hidden = np.asarray(features, np.float32)
    for layer in head.layers[:-1]:
        hidden = layer(hidden, training=False)
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_layer(OUTPUT).get_weights())
    return np.asarray(hidden, np.float64) @ kernel + bias


def keep_units(head: keras.Model, keep: np.ndarray) -> keras.Model:
    """A new head with only the hidden units ``keep`` (indices), weights copied.

    Dropping a unit removes its column of the hidden kernel, its bias and its
    row of the output kernel: the new head computes exactly what the old one
    computes with those units silenced, and it is genuinely smaller.
    """
    keep = np.sort(np.asarray(keep, np.int64))
    hidden, output = head.get_layer(HIDDEN), head.get_layer(OUTPUT)
    dropout = head.get_layer("head.dropout1").rate
    smaller = build_head(output.units, units=len(keep), dropout=dropout)
    kernel, bias = hidden.get_weights()
    smaller.get_layer(HIDDEN).set_weights([kernel[:, keep], bias[keep]])
    kernel, bias = output.get_weights()
    smaller.get_layer(OUTPUT).set_weights([kernel[keep], bias])
    return smaller
