"""Mixed precision: compute in float16/bfloat16, keep variables and the saved model float32.

A loaded backbone keeps the float32 dtype policy recorded in its file, so for
mixed precision the same architecture is rebuilt under the mixed policy and
given the loaded weights. Training and extraction run on that copy; before a
model is saved its weights go back into the float32 backbone, so a run's
``model.keras`` is float32 whatever it was trained with (predict on a CPU
does not pay for float16 emulation). The head's last layer is always float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from resnet_ft.errors import InputError

if TYPE_CHECKING:
    import keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def policy(precision: str) -> Iterator[None]:
    """Set Keras' global dtype policy for the models built inside, then restore it."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compute_backbone(backbone: keras.Model, metadata: dict, precision: str) -> keras.Model:
    """The backbone to compute with: itself for float32, else a mixed-policy copy."""
    if precision == "float32":
        return backbone
    from resnet_ft.models.architectures import FAMILIES, build_resnet

    if metadata.get("family") not in FAMILIES or "depth" not in metadata:
        raise InputError("--precision: the backbone file does not say its family and depth; "
                         "convert it with this version of resnet-ft")
    with policy(precision):
        mixed = build_resnet(FAMILIES[metadata["family"]], int(metadata["depth"]))
    for layer in mixed.layers:
        if layer.weights:
            layer.set_weights(backbone.get_layer(layer.name).get_weights())
    return mixed


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Weights of the compute copy back into the float32 backbone (same layer names)."""
    if source is target:
        return
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
