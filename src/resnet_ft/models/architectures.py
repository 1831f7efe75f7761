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

Layer names mirror the slim variable scopes with ``.`` for ``/`` (Keras forbids
``/``): ``block3.unit_23.bottleneck_v1.conv2`` holds the weights of slim's
``resnet_v1_101/block3/unit_23/bottleneck_v1/conv2/weights``. Every family uses
these names, so a checkpoint reader is a name map onto one naming scheme.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import keras

#: Units per stage (block1..block4) for each supported depth.
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

#: Bottleneck width of each stage; the stage's output has 4x as many channels.
STAGE_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)
EXPANSION = 4
FEATURE_CHANNELS = STAGE_WIDTHS[-1] * EXPANSION
STAGES: tuple[str, ...] = ("block1", "block2", "block3", "block4")
UNIT_SCOPE = "bottleneck_v1"


@dataclass(frozen=True)
class Normalization:
    """Per-channel affine input normalisation ``y = x * scale + offset`` on RGB [0, 255].

    All three families' preprocessing is an affine map per channel, so one
    ``Rescaling`` layer expresses it exactly. Keras-applications' RGB→BGR flip
    is not done on the pixels: the converter permutes the first convolution's
    input channels instead, which computes the same network.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pixel_scale: float = 1.0

    @property
    def scale(self) -> list[float]:
        """Multiplier per RGB channel."""
        return [self.pixel_scale / s for s in self.std]

    @property
    def offset(self) -> list[float]:
        """Additive term per RGB channel."""
        return [-m / s for m, s in zip(self.mean, self.std, strict=True)]


@dataclass(frozen=True)
class Family:
    """Everything that distinguishes one checkpoint family's ResNet v1 from another."""

    name: str
    stride_unit: Literal["first", "last"]
    stride_conv: Literal["conv1", "conv2"]
    stage_strides: tuple[int, int, int, int]
    pool_padding: Literal["same", "symmetric"]
    conv_bias: bool
    bn_epsilon: float
    bn_momentum: float
    normalization: Normalization
    description: str

    def model_name(self, depth: int) -> str:
        """Name of the Keras model; for slim it is the checkpoint's top scope."""
        return f"resnet_v1_{depth}" if self.name == "slim" else f"resnet{depth}_{self.name}"


SLIM = Family(
    name="slim",
    stride_unit="last",
    stride_conv="conv2",
    stage_strides=(2, 2, 2, 1),
    pool_padding="same",
    conv_bias=False,
    bn_epsilon=1e-5,
    bn_momentum=0.997,
    normalization=Normalization(mean=(123.68, 116.78, 103.94)),
    description="TF-slim resnet_v1 (official resnet_v1_{50,101,152}.ckpt)",
)

KERAS_APPLICATIONS = Family(
    name="keras",
    stride_unit="first",
    stride_conv="conv1",
    stage_strides=(1, 2, 2, 2),
    pool_padding="symmetric",
    conv_bias=True,
    bn_epsilon=1.001e-5,
    bn_momentum=0.99,
    # "caffe" mode: BGR means; stored here in RGB order (see Normalization).
    normalization=Normalization(mean=(123.68, 116.779, 103.939)),
    description="keras.applications ResNet{50,101,152} (caffe preprocessing)",
)

TORCHVISION = Family(
    name="torchvision",
    stride_unit="first",
    stride_conv="conv2",
    stage_strides=(1, 2, 2, 2),
    pool_padding="symmetric",
    conv_bias=False,
    bn_epsilon=1e-5,
    bn_momentum=0.9,
    normalization=Normalization(
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), pixel_scale=1.0 / 255.0
    ),
    description="torchvision/timm resnet{50,101,152} (v1.5: stride on the 3x3 conv)",
)

FAMILIES: dict[str, Family] = {f.name: f for f in (SLIM, KERAS_APPLICATIONS, TORCHVISION)}


@dataclass(frozen=True)
class BackboneInfo:
    """What a converted backbone is: travels inside the saved model file.

    Like timm's ``pretrained_cfg``, the preprocessing facts live with the
    weights, so no caller ever re-types mean values.
    """

    family: str
    depth: int
    include_top: bool = False
    num_classes: int = 0
    source: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, including the family's normalisation for readers."""
        data: dict[str, object] = asdict(self)
        norm = FAMILIES[self.family].normalization
        data["normalization"] = {"scale": norm.scale, "offset": norm.offset}
        return data


def unit_names(depth: int) -> list[tuple[int, str]]:
    """``(stage index, "blockB.unit_U.bottleneck_v1")`` for every unit, in order."""
    return [
        (stage, f"{STAGES[stage]}.unit_{unit + 1}.{UNIT_SCOPE}")
        for stage, count in enumerate(DEPTHS[depth])
        for unit in range(count)
    ]


def stage_of(layer_name: str) -> str:
    """Stage a canonical layer name belongs to: ``stem``, ``block1``..``block4`` or ``top``."""
    head = layer_name.split(".", 1)[0]
    if head in STAGES:
        return head
    if head == "logits":
        return "top"
    return "stem"


def build_resnet(
    family: Family, depth: int, *, include_top: bool = False, num_classes: int = 1000,
    fold_bn: bool = False,
) -> keras.Model:
    """Build a ResNet v1 of ``family``'s topology taking RGB pixels in [0, 255].

    Output: the last stage's feature map ``(N, h, w, 2048)`` (slim's
    ``resnet_v1_<depth>/block4`` end point). With ``include_top`` the model has
    a second output, the classifier logits after global average pooling.
    ``fold_bn`` builds the inference-only variant whose convolutions carry a
    bias and no BatchNorm follows them (see :mod:`resnet_ft.models.folding`).
    """
    import keras
    from keras import layers

    if depth not in DEPTHS:
        raise ValueError(f"unsupported depth {depth}; choose from {sorted(DEPTHS)}")
    inputs = keras.Input(shape=(None, None, 3), name="pixels")
    x = _stem(inputs, family, fold_bn)
    channels = 64
    for stage, count in enumerate(DEPTHS[depth]):
        strided_unit = 0 if family.stride_unit == "first" else count - 1
        for unit in range(count):
            stride = family.stage_strides[stage] if unit == strided_unit else 1
            name = f"{STAGES[stage]}.unit_{unit + 1}.{UNIT_SCOPE}"
            x = _bottleneck(x, family, channels, STAGE_WIDTHS[stage], stride, name, fold_bn)
            channels = STAGE_WIDTHS[stage] * EXPANSION
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

    if stride > 1 and kernel > 1:
        before = (kernel - 1) // 2
        pad = ((before, kernel - 1 - before),) * 2
        x = layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
    padding = "same" if stride == 1 else "valid"
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, use_bias=family.conv_bias or fold,
        name=name,
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
    if family.pool_padding == "symmetric":
        x = layers.ZeroPadding2D(1, name="pool1.pad")(x)
        return layers.MaxPooling2D(3, strides=2, padding="valid", name="pool1")(x)
    return layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)


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
