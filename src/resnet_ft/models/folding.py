"""A frozen backbone with BatchNorm folded into its convolutions: the same function, fewer ops.

In inference mode a BatchNorm after a convolution is an affine map per output
channel, ``gamma * (conv(x) - mean) / sqrt(var + eps) + beta``, so it can be
moved into the convolution: kernel * s and bias (b - mean) * s + beta with
s = gamma / sqrt(var + eps). A norm followed by a ReLU before the next
convolution (ResNet v2's pre-activation) stays, and so does GroupNorm, whose
statistics are per image; BiT's weight standardisation is applied once here.
tf-slim's graphs get this from grappler; Keras models do not, so feature
extraction runs a folded copy. The copy is built from the float32 weights every
time it is needed (never saved), so it cannot go stale when fine-tuning changes
the weights; training and the saved model always use the unfolded backbone.
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
    from resnet_ft.models.architectures import build_resnet
    from resnet_ft.models.families import FAMILIES
    from resnet_ft.models.preact import standardise

    if metadata.get("family") not in FAMILIES or "depth" not in metadata:
        raise InputError("the backbone file does not say its family and depth; "
                         "convert it with this version of resnet-ft")
    folded = build_resnet(FAMILIES[metadata["family"]], int(metadata["depth"]), fold_bn=True)
    names = {layer.name for layer in backbone.layers}
    for layer in folded.layers:
        if not layer.weights:
            continue
        source = backbone.get_layer(layer.name)
        weights = source.get_weights()
        ws_epsilon = getattr(source, "ws_epsilon", None)
        if ws_epsilon is not None:  # BiT: the kernel standardised once, not at every call
            weights[0] = standardise(weights[0], ws_epsilon)
        if f"{layer.name}.BatchNorm" in names:  # conv -> BN (v1: all; v2: conv1, conv2)
            bn = backbone.get_layer(f"{layer.name}.BatchNorm")
            weights = fold(weights, bn.get_weights(), bn.epsilon)
        layer.set_weights(weights)
    return folded


def fold(conv: list[np.ndarray], bn: list[np.ndarray], epsilon: float) -> list[np.ndarray]:
    """``[kernel, bias]`` of the convolution that equals conv -> BN (inference mode)."""
    kernel = conv[0].astype(np.float64)
    bias = conv[1].astype(np.float64) if len(conv) > 1 else np.zeros(kernel.shape[-1])
    gamma, beta, mean, variance = (w.astype(np.float64) for w in bn)
    scale = gamma / np.sqrt(variance + epsilon)
    return [(kernel * scale).astype(np.float32),
            ((bias - mean) * scale + beta).astype(np.float32)]
