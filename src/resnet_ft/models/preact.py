"""ResNet v2 (pre-activation) backbones, BiT included: one builder for every v2 family.

What differs between the families (fields of :class:`~resnet_ft.models.families.PreactFamily`):

============================  ===============  ==================  ==========================
                              TF-slim v2       keras.applications  BiT (timm / Google npz)
============================  ===============  ==================  ==========================
stride: which unit            last             last                first
stage strides (block1..4)     2, 2, 2, 1       2, 2, 2, 1          1, 2, 2, 2
stem max-pool 3x3/2           TF "SAME"        zero pad 1, VALID   zero pad 1, VALID
conv biases (stem, shortcut,  yes              yes                 no (the head only)
conv3)
norm                          BN eps 1e-5      BN eps 1.001e-5     GroupNorm 32, eps 1e-5
weight standardisation        no               no                  yes, eps 1e-8 / 1e-10
============================  ===============  ==================  ==========================

Shared by all: the stem is a 7x7/2 convolution with **no** norm or ReLU, then
the pool (its input can be negative, so SAME's -inf padding and a zero
padding differ). A unit is ``p = relu(norm(x))``; ``y = conv1x1(p) -> norm ->
relu -> conv3x3(stride) -> norm -> relu -> conv1x1``; ``out = shortcut + y``
with nothing after the add. The shortcut is a 1x1 projection of ``p`` when the
channel count changes, ``x`` subsampled by a 1x1 max-pool when only the
stride does, else ``x``. The features are ``relu(norm(x))`` after the last
unit (``postnorm``): the model's output, as for v1 the last feature map.

BiT standardises each output channel's kernel (biased variance) before every
convolution: :class:`StdConv2D` does it at every call, so gradients flow
through it and the trainable backbone stays a BiT. A frozen copy for
extraction (``fold=True``) stores the standardised kernels instead, computed
once in float64, and folds each BatchNorm that follows a convolution into it;
the pre-activation norms cannot fold (a ReLU sits between them and the next
convolution), and GroupNorm never does (its statistics are per image).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.models.blocks import kernel_initializer, pad_for_stride, stem_pool
from resnet_ft.models.families import DEPTHS, EXPANSION, GROUPS, PreactFamily, unit_plan

if TYPE_CHECKING:
    import keras


@functools.cache
def std_conv_class() -> type:
    """The :class:`StdConv2D` layer class (made on first use: it needs Keras)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="resnet_ft")
    class StdConv2D(keras.layers.Conv2D):
        """Conv2D whose kernel is weight-standardised per output channel at every call.

        The kernel variable is not autocast: under a mixed-precision policy the
        statistics are taken on the float32 kernel and only the result is cast.
        """

        def __init__(self, *args: object, ws_epsilon: float = 1e-8, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.ws_epsilon = ws_epsilon

        def add_weight(self, *args: object, **kwargs: object) -> object:
            if kwargs.get("name") == "kernel":
                kwargs["autocast"] = False
            return super().add_weight(*args, **kwargs)

        def convolution_op(self, inputs: object, kernel: object) -> object:
            kernel = ops.cast(kernel, "float32")
            mean, variance = ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
            kernel = (kernel - mean) / ops.sqrt(variance + self.ws_epsilon)
            return super().convolution_op(inputs, ops.cast(kernel, inputs.dtype))

        def get_config(self) -> dict[str, object]:
            return {**super().get_config(), "ws_epsilon": self.ws_epsilon}

    return StdConv2D


def standardise(kernel: np.ndarray, epsilon: float) -> np.ndarray:
    """Weight standardisation of an HWIO kernel in float64 (biased variance per output)."""
    k = kernel.astype(np.float64)
    mean = k.mean(axis=(0, 1, 2), keepdims=True)
    variance = ((k - mean) ** 2).mean(axis=(0, 1, 2), keepdims=True)
    return ((k - mean) / np.sqrt(variance + epsilon)).astype(np.float32)


def build_preact(family: PreactFamily, depth: int, *, include_top: bool = False,
                 num_classes: int = 1000, fold_bn: bool = False) -> keras.Model:
    """Build a ResNet v2 of ``family``'s topology taking RGB pixels in [0, 255].

    Output: the features after the final norm and ReLU ``(N, h, w, 2048)``;
    with ``include_top`` also the logits. ``fold_bn``: the extraction copy
    (BN after a convolution folded into it, standardised kernels stored).
    """
    import keras
    from keras import layers

    if depth not in DEPTHS:
        raise ValueError(f"unsupported depth {depth}; choose from {sorted(DEPTHS)}")
    build = _Builder(family, fold_bn)
    inputs = keras.Input(shape=(None, None, 3), name="pixels")
    norm = family.normalization
    x = layers.Rescaling(scale=norm.scale, offset=norm.offset, name="normalize")(inputs)
    x = build.conv(x, 64, 7, 2, "conv1", family.conv_bias)
    x = stem_pool(x, family.pool_padding)
    for name, channels, width, stride in unit_plan(family, depth):
        x = build.unit(x, channels, width, stride, name)
    features = build.norm_relu(x, "postnorm")
    outputs = features
    if include_top:
        pooled = layers.GlobalAveragePooling2D(name="logits.pool")(features)
        outputs = [features, layers.Dense(num_classes, name="logits")(pooled)]
    return keras.Model(inputs, outputs, name=family.model_name(depth))


class _Builder:
    """The layers of one family's units (kept together: they share the family's choices)."""

    def __init__(self, family: PreactFamily, fold: bool) -> None:
        self.family, self.fold = family, fold

    def conv(self, x: object, filters: int, kernel: int, stride: int, name: str,
             bias: bool) -> object:
        """A convolution; strided ones are padded symmetrically by (k - 1) // 2."""
        from keras import layers

        x, padding = pad_for_stride(x, kernel, stride, name)
        if self.family.ws_epsilon is not None and not self.fold:
            return std_conv_class()(filters, kernel, strides=stride, padding=padding,
                                    use_bias=bias, name=name,
                                    ws_epsilon=self.family.ws_epsilon)(x)
        return layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=bias,
                             kernel_initializer=kernel_initializer(self.fold), name=name)(x)

    def norm_relu(self, x: object, name: str) -> object:
        """The family's norm, then ReLU."""
        from keras import layers

        family = self.family
        if family.norm == "batch":
            x = layers.BatchNormalization(epsilon=family.norm_epsilon,
                                          momentum=family.bn_momentum, name=name)(x)
        else:
            x = layers.GroupNormalization(groups=GROUPS, epsilon=family.norm_epsilon,
                                          name=name)(x)
        return layers.ReLU(name=f"{name}.relu")(x)

    def conv_norm_relu(self, x: object, filters: int, kernel: int, stride: int,
                       name: str) -> object:
        """Convolution -> norm -> ReLU; a folded BatchNorm becomes the convolution's bias."""
        from keras import layers

        folded = self.fold and self.family.norm == "batch"
        x = self.conv(x, filters, kernel, stride, name, bias=folded)
        if folded:
            return layers.ReLU(name=f"{name}.{self.family.norm_suffix}.relu")(x)
        return self.norm_relu(x, f"{name}.{self.family.norm_suffix}")

    def unit(self, x: object, channels: int, width: int, stride: int, name: str) -> object:
        """One pre-activation bottleneck unit."""
        from keras import layers

        out_channels = width * EXPANSION
        preact = self.norm_relu(x, f"{name}.preact")
        if channels != out_channels:  # the projection sees the pre-activated input
            shortcut = self.conv(preact, out_channels, 1, stride, f"{name}.shortcut",
                                 self.family.conv_bias)
        elif stride > 1:  # slim's `subsample` of the raw input
            shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}.shortcut")(x)
        else:
            shortcut = x
        y = self.conv_norm_relu(preact, width, 1, 1, f"{name}.conv1")
        y = self.conv_norm_relu(y, width, 3, stride, f"{name}.conv2")
        y = self.conv(y, out_channels, 1, 1, f"{name}.conv3", self.family.conv_bias)
        return layers.Add(name=f"{name}.add")([shortcut, y])
