"""The classification head and the full pixels -> probabilities model.

Head: global average pool -> Dropout -> Dense(units, ReLU) -> Dropout ->
Dense(N, softmax). The ReLU matters: two stacked Dense layers without an
activation collapse into one linear map (the reference tutorial's bug).

The head is its own small model over pooled features, so it can be trained
on cached features; the saved classifier wires the *same* layer objects
after the frozen backbone, so the weights trained on features are the
weights of the model that is saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_ft.models.architectures import FEATURE_CHANNELS

if TYPE_CHECKING:
    import keras


def build_head(num_classes: int, *, units: int, dropout: float) -> keras.Model:
    """Pooled features (N, 2048) -> class probabilities (N, num_classes)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((FEATURE_CHANNELS,), name="features"),
            layers.Dropout(dropout, name="head.dropout1"),
            layers.Dense(units, activation="relu", name="head.dense"),
            layers.Dropout(dropout, name="head.dropout2"),
            # float32 output even under a mixed-precision policy
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
