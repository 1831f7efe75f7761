"""ResNet v1 backbones as Keras 3 functional models, one builder for every checkpoint family.

The three families whose weights users hold (TF-slim, keras.applications,
torchvision/timm) share weight shapes but not topology. Everything that differs
is a field of :class:`Family`; :func:`build_resnet` reads those fields and
nothing else, so adding a family is adding a description, never a builder.

What differs, and where it is encoded:

============================  ===========  ==================  ===================
                              TF-slim      keras.applications  torchvision / timm
============================  ===========  ==================  ===================
stride: which unit            last unit    first unit          first unit
stride: which conv            3x3 (conv2)  1x1 (conv1)         3x3 (conv2)
stage strides (block1..4)     2, 2, 2, 1   1, 2, 2, 2          1, 2, 2, 2
first max-pool padding        TF "SAME"    symmetric 1         symmetric 1
conv biases                   no           yes                 no
BN epsilon                    1e-5         1.001e-5            1e-5
input normalisation           RGB - mean   BGR - mean          (x/255 - mean)/std
============================  ===========  ==================  ===================

Strided convolutions are padded symmetrically by ``(k - 1) // 2`` in all three
(slim's ``conv2d_same``, torch's ``padding=k//2``, Keras' ``ZeroPadding2D``),
so that is not a family field. The symmetric max-pool is built as zero padding
plus a VALID pool: the pool's input comes straight from a ReLU, so zeros never
win and this equals torch's ``-inf`` padding.

Layer names follow :mod:`resnet_ft.models.families`. :func:`build_resnet` builds
any family; a ResNet v2 one is :mod:`resnet_ft.models.preact`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_ft.models.blocks import kernel_initializer, pad_for_stride, stem_pool
from resnet_ft.models.families import (
    DEPTHS,
    EXPANSION,
    AnyFamily,
    Family,
    PreactFamily,
    unit_plan,
)
from resnet_ft.models.preact import build_preact

if TYPE_CHECKING:
    import keras


def build_resnet(
    family: AnyFamily, depth: int, *, include_top: bool = False, num_classes: int = 1000,
    fold_bn: bool = False,
) -> keras.Model:
    """Build a ResNet of ``family``'s topology (v1 here, v2 in preact) on RGB pixels in [0, 255].

    Output: the last stage's feature map ``(N, h, w, 2048)`` (slim's
    ``resnet_v1_<depth>/block4`` end point). With ``include_top`` the model has
    a second output, the classifier logits after global average pooling.
    ``fold_bn`` builds the inference-only variant whose convolutions carry a
    bias and no BatchNorm follows them (see :mod:`resnet_ft.models.folding`).
    """
    import keras
    from keras import layers

    if isinstance(family, PreactFamily):  # ResNet v2 / BiT: :mod:`resnet_ft.models.preact`
        return build_preact(family, depth, include_top=include_top, num_classes=num_classes,
                            fold_bn=fold_bn)
    if depth not in DEPTHS:
        raise ValueError(f"unsupported depth {depth}; choose from {sorted(DEPTHS)}")
    inputs = keras.Input(shape=(None, None, 3), name="pixels")
    x = _stem(inputs, family, fold_bn)
    for name, channels, width, stride in unit_plan(family, depth):
        x = _bottleneck(x, family, channels, width, stride, name, fold_bn)
    outputs = x
    if include_top:
        pooled = layers.GlobalAveragePooling2D(name="logits.pool")(x)
        logits = layers.Dense(num_classes, name="logits")(pooled)
        outputs = [x, logits]
    return keras.Model(inputs, outputs, name=family.model_name(depth))


def _conv_bn(x, family: Family, filters: int, kernel: int, stride: int, name: str, relu: bool,
             fold: bool = False):
    """Conv (strided ones padded symmetrically by (k - 1) // 2) -> BN -> optional ReLU.

    ``fold``: the convolution has a bias and no BN follows (BN folded into it).
    """
    from keras import layers

    x, padding = pad_for_stride(x, kernel, stride, name)
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, use_bias=family.conv_bias or fold,
        kernel_initializer=kernel_initializer(fold), name=name,
    )(x)
    if not fold:
        x = layers.BatchNormalization(
            epsilon=family.bn_epsilon, momentum=family.bn_momentum, name=f"{name}.BatchNorm"
        )(x)
    return layers.ReLU(name=f"{name}.relu")(x) if relu else x


def _stem(inputs, family: Family, fold: bool):
    """Input normalisation, the 7x7/2 convolution and the 3x3/2 max-pool."""
    from keras import layers

    norm = family.normalization
    x = layers.Rescaling(scale=norm.scale, offset=norm.offset, name="normalize")(inputs)
    x = _conv_bn(x, family, 64, 7, 2, "conv1", relu=True, fold=fold)
    return stem_pool(x, family.pool_padding)


def _bottleneck(x, family: Family, channels: int, width: int, stride: int, name: str,
                fold: bool):
    """One bottleneck unit: 1x1 -> 3x3 -> 1x1 (x4 channels), plus the shortcut, then ReLU."""
    from keras import layers

    out_channels = width * EXPANSION
    if channels != out_channels:
        shortcut = _conv_bn(x, family, out_channels, 1, stride, f"{name}.shortcut", relu=False,
                            fold=fold)
    elif stride > 1:
        # slim's `subsample`: a 1x1 max-pool, i.e. take every stride-th pixel.
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}.shortcut")(x)
    else:
        shortcut = x
    s1, s2 = (stride, 1) if family.stride_conv == "conv1" else (1, stride)
    y = _conv_bn(x, family, width, 1, s1, f"{name}.conv1", relu=True, fold=fold)
    y = _conv_bn(y, family, width, 3, s2, f"{name}.conv2", relu=True, fold=fold)
    y = _conv_bn(y, family, out_channels, 1, 1, f"{name}.conv3", relu=False, fold=fold)
    x = layers.Add(name=f"{name}.add")([shortcut, y])
    return layers.ReLU(name=f"{name}.out")(x)
