"""Unfreezing the top of the backbone: which layers train, and where the frozen part ends.

``--trainable blockK`` unfreezes stage K and everything above it (``all``
includes the stem). The frozen stages below never change, so their output —
the *boundary* tensor — is cached (:mod:`resnet_ft.features.boundary`), and
phase 2 runs only the unfrozen stages. BatchNorm
layers of unfrozen stages stay frozen — inference mode, statistics and
gamma/beta untouched (the Keras transfer-learning rule) — unless ``--train-bn``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_ft.models.families import stage_of

if TYPE_CHECKING:
    import keras

#: Index of the first unfrozen stage per mode (stem = 0, blockK = K); head unfreezes none.
FIRST_TRAINABLE = {"all": 0, "block1": 1, "block2": 2, "block3": 3, "block4": 4, "head": 5}
_STAGE_INDEX = {"stem": 0, "block1": 1, "block2": 2, "block3": 3, "block4": 4}
_INPUT_LAYERS = ("pixels", "normalize")  # no weights; they belong to no stage


def _index(layer_name: str) -> int:
    return -1 if layer_name in _INPUT_LAYERS else _STAGE_INDEX.get(stage_of(layer_name), -1)


def set_trainable(backbone: keras.Model, mode: str, *, train_bn: bool = False) -> None:
    """Freeze the stages below ``mode``, unfreeze it and those above.

    BatchNorm layers of unfrozen stages stay frozen unless ``train_bn``: in
    Keras 3 a non-trainable BN layer always runs in inference mode, whatever
    ``training`` says, which is the only reliable way to keep its statistics
    (an outer ``training=True`` overrides a ``training=False`` recorded in a
    functional graph).
    """
    import keras

    first = FIRST_TRAINABLE[mode]
    backbone.trainable = first < 5
    for layer in backbone.layers:
        unfrozen = _index(layer.name) >= first
        if isinstance(layer, keras.layers.BatchNormalization):
            unfrozen = unfrozen and train_bn
        layer.trainable = unfrozen


def split_backbone(backbone: keras.Model, mode: str) -> tuple[keras.Model, keras.Model]:
    """``(lower, upper)``: pixels -> boundary tensor, boundary -> last feature map.

    Both share the backbone's layer objects, so training ``upper`` trains the
    backbone that is saved.
    """
    import keras

    first = FIRST_TRAINABLE[mode]
    boundary = [layer for layer in backbone.layers if _index(layer.name) < first][-1]
    lower = keras.Model(backbone.input, boundary.output, name="frozen_stages")
    upper = keras.Model(boundary.output, backbone.output, name="unfrozen_stages")
    return lower, upper


def phase2_model(upper: keras.Model, head: keras.Model) -> keras.Model:
    """Boundary tensor -> unfrozen stages -> pooling -> head (BN as set by set_trainable)."""
    import keras
    from keras import layers

    inputs = keras.Input(upper.input.shape[1:], name="boundary")
    features = upper(inputs)
    return keras.Model(inputs, head(layers.GlobalAveragePooling2D()(features)), name="phase2")
