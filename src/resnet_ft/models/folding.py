"""A frozen backbone with BatchNorm folded into its convolutions: the same function, fewer ops.

In inference mode a BatchNorm after a convolution is an affine map per output
channel, ``gamma * (conv(x) - mean) / sqrt(var + eps) + beta``, so it can be
moved into the convolution: kernel * s and bias (b - mean) * s + beta with
s = gamma / sqrt(var + eps). tf-slim's graphs get this from grappler; Keras
models do not, so feature extraction runs a folded copy. The copy is built
from the float32 weights every time it is needed (never saved), so it cannot
go stale when fine-tuning changes the weights; training and the saved model
always use the unfolded backbone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.errors import InputError

if TYPE_CHECKING:
    import keras


def folded_copy(backbone: keras.Model, metadata: dict) -> keras.Model:
    """The backbone rebuilt with BN folded (under the current dtype policy), weights folded in.

    Folding is done in float64 from the float32 weights; a mixed-precision
    policy then computes in bfloat16/float16 with float32 variables as usual.
    """
    from resnet_ft.models.architectures import FAMILIES, build_resnet

    if metadata.get("family") not in FAMILIES or "depth" not in metadata:
        raise InputError("the backbone file does not say its family and depth; "
                         "convert it with this version of resnet-ft")
    folded = build_resnet(FAMILIES[metadata["family"]], int(metadata["depth"]), fold_bn=True)
    for layer in folded.layers:
        if not layer.weights:
            continue
        # in ResNet v1 every convolution is followed by a BatchNorm (the logits are not built)
        bn = backbone.get_layer(f"{layer.name}.BatchNorm")
        conv = backbone.get_layer(layer.name).get_weights()
        layer.set_weights(fold(conv, bn.get_weights(), bn.epsilon))
    return folded


def fold(conv: list[np.ndarray], bn: list[np.ndarray], epsilon: float) -> list[np.ndarray]:
    """``[kernel, bias]`` of the convolution that equals conv -> BN (inference mode)."""
    kernel = conv[0].astype(np.float64)
    bias = conv[1].astype(np.float64) if len(conv) > 1 else np.zeros(kernel.shape[-1])
    gamma, beta, mean, variance = (w.astype(np.float64) for w in bn)
    scale = gamma / np.sqrt(variance + epsilon)
    return [(kernel * scale).astype(np.float32),
            ((bias - mean) * scale + beta).astype(np.float32)]
