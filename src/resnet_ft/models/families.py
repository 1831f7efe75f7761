"""What distinguishes the checkpoint families: a description each, shared by builders and readers.

A family is data, never code. :mod:`resnet_ft.models.architectures` builds
ResNet v1 from a :class:`Family` and :mod:`resnet_ft.models.preact` ResNet v2
(pre-activation, BiT included) from a :class:`PreactFamily`; readers, folding,
mixed precision and the model files look a family up by name in
:data:`FAMILIES`, so adding one is adding a description here.

Layer names mirror the TF-slim variable scopes with ``.`` for ``/`` (Keras
forbids ``/``): ``block3.unit_23.bottleneck_v1.conv2`` holds slim's
``resnet_v1_101/block3/unit_23/bottleneck_v1/conv2/weights``, and every family,
v1 or v2, uses that scheme, so a checkpoint reader is a name map onto it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

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

    unit_scope = UNIT_SCOPE

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

#: Inception / keras.applications "tf" mode / BiT: x / 127.5 - 1.
MINUS_ONE_TO_ONE = Normalization(mean=(127.5,) * 3, std=(127.5,) * 3)


@dataclass(frozen=True)
class PreactFamily:
    """Everything that distinguishes one family's ResNet v2 (pre-activation) from another.

    The stride is on the 3x3 convolution in all of them; see
    :mod:`resnet_ft.models.preact` for the table of what differs.
    """

    name: str
    stride_unit: Literal["first", "last"]
    stage_strides: tuple[int, int, int, int]
    pool_padding: Literal["same", "symmetric"]
    conv_bias: bool
    norm: Literal["batch", "group"]
    norm_epsilon: float
    description: str
    #: Weight standardisation's epsilon (BiT); ``None``: plain convolutions.
    ws_epsilon: float | None = None
    bn_momentum: float = 0.99
    normalization: Normalization = MINUS_ONE_TO_ONE

    unit_scope = "bottleneck_v2"

    @property
    def norm_suffix(self) -> str:
        """How the norm after a convolution is named: ``<conv>.BatchNorm`` or ``.GroupNorm``."""
        return "BatchNorm" if self.norm == "batch" else "GroupNorm"

    def model_name(self, depth: int) -> str:
        """Name of the Keras model; for slim it is the checkpoint's top scope."""
        return f"resnet_v2_{depth}" if self.name == "slim_v2" else f"resnet{depth}_{self.name}"


SLIM_V2 = PreactFamily(
    name="slim_v2", stride_unit="last", stage_strides=(2, 2, 2, 1), pool_padding="same",
    conv_bias=True, norm="batch", norm_epsilon=1e-5, bn_momentum=0.997,
    description="TF-slim resnet_v2 (official resnet_v2_{50,101,152} checkpoints, 299 px)",
)
# Keras' ResNet*V2 is slim's topology but for the stem pool (zero padding) and its BN epsilon.
KERAS_V2 = replace(
    SLIM_V2, name="keras_v2", pool_padding="symmetric", norm_epsilon=1.001e-5, bn_momentum=0.99,
    description="keras.applications ResNet{50,101,152}V2 (tf preprocessing)",
)
# BiT: GroupNorm and weight-standardised convolutions. The two file layouts carry the same
# numbers; the epsilon belongs to the code each was published with (timm 1e-8, Google 1e-10).
BIT = PreactFamily(
    name="bit", stride_unit="first", stage_strides=(1, 2, 2, 2), pool_padding="symmetric",
    conv_bias=False, norm="group", norm_epsilon=1e-5, ws_epsilon=1e-8,
    description="BiT in timm's layout (resnetv2_{50,101}x1_bit safetensors)",
)
BIT_GOOGLE = replace(BIT, name="bit_google", ws_epsilon=1e-10,
                     description="BiT in Google's layout (BiT-{S,M}-R{50,101}x1.npz)")
#: Groups of every BiT GroupNorm (the paper's and both codes' choice).
GROUPS = 32

AnyFamily = Family | PreactFamily
FAMILIES: dict[str, AnyFamily] = {f.name: f for f in (
    SLIM, KERAS_APPLICATIONS, TORCHVISION, SLIM_V2, KERAS_V2, BIT, BIT_GOOGLE)}


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


def unit_plan(family: AnyFamily, depth: int) -> list[tuple[str, int, int, int]]:
    """``(layer name, input channels, width, stride)`` of every bottleneck unit, in order:
    where each family puts a stage's stride is decided here, for v1 and v2 builders alike."""
    plan, channels = [], 64
    for stage, count in enumerate(DEPTHS[depth]):
        strided_unit = 0 if family.stride_unit == "first" else count - 1
        for unit in range(count):
            stride = family.stage_strides[stage] if unit == strided_unit else 1
            name = f"{STAGES[stage]}.unit_{unit + 1}.{family.unit_scope}"
            plan.append((name, channels, STAGE_WIDTHS[stage], stride))
            channels = STAGE_WIDTHS[stage] * EXPANSION
    return plan


def stage_of(layer_name: str) -> str:
    """Stage a canonical layer name belongs to: ``stem``, ``block1``..``block4`` or ``top``."""
    head = layer_name.split(".", 1)[0]
    if head in STAGES:
        return head
    if head == "postnorm":  # v2's final norm + ReLU: the end of block4
        return "block4"
    if head == "logits":
        return "top"
    return "stem"
