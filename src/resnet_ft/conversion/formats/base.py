"""The common shape of every checkpoint reader's result, and what all readers share.

Readers differ in file format and name map; they agree on how a canonical
layer name decomposes (:func:`parse_layer`) and on how the depth is told from
a file (:func:`detect_depth`). Those live here so that each reader module is
only its format and its name map.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from resnet_ft.errors import CheckpointError
from resnet_ft.models.families import DEPTHS, AnyFamily

#: A transform from a source array to the Keras variable's layout.
Hook = Callable[[np.ndarray], np.ndarray]


@dataclass
class SourceWeights:
    """Arrays read from a checkpoint plus the map from Keras variables to them.

    ``locate(layer_name, variable_name)`` returns the source key and an
    optional hook (e.g. a transpose); it is the family's whole name map,
    readable top to bottom in the reader module. ``ignored`` are keys that
    are present but intentionally unused (``global_step``, the classifier
    when it is not kept).
    """

    family: AnyFamily
    depth: int
    num_classes: int
    tensors: Mapping[str, np.ndarray]
    locate: Callable[[str, str], tuple[str, Hook | None]]
    source: str
    ignored: frozenset[str] = field(default_factory=frozenset)
    top_keys: frozenset[str] = field(default_factory=frozenset)


Part = Literal["conv1", "conv2", "conv3", "shortcut", "logits", "preact", "postnorm"]


@dataclass(frozen=True)
class LayerRef:
    """A canonical layer name taken apart: what every family's name map is written against.

    ``stage`` is 1..4 for ``block1``..``block4`` and 0 for the stem and the
    classifier; ``unit`` is 1-based (slim's ``unit_1``), 0 outside the stages.
    The stem convolution is ``part="conv1"`` with ``stage=0``.
    """

    stage: int
    unit: int
    part: Part
    batch_norm: bool


_UNIT_LAYER = re.compile(
    r"^block([1-4])\.unit_(\d+)\.bottleneck_v[12]\.(conv[123]|shortcut|preact)"
    r"(\.BatchNorm|\.GroupNorm)?$"
)


def parse_layer(name: str) -> LayerRef:
    """Decompose a canonical layer name (``block3.unit_23.bottleneck_v1.conv2.BatchNorm``).

    ``batch_norm`` marks the norm after a convolution (a GroupNorm in BiT).
    Only layers that hold weights reach a name map, and :func:`build_resnet`
    names every one of them in this scheme; anything else is a bug.
    """
    if name in ("conv1", "conv1.BatchNorm"):
        return LayerRef(0, 0, "conv1", name.endswith(".BatchNorm"))
    if name in ("logits", "postnorm"):
        return LayerRef(0, 0, name, False)  # type: ignore[arg-type]
    match = _UNIT_LAYER.match(name)
    if match is None:
        raise ValueError(f"not a canonical ResNet layer name: {name}")
    stage, unit, part, norm = match.groups()
    return LayerRef(int(stage), int(unit), part, norm is not None)  # type: ignore[arg-type]


def logits_hook(layer: str, variable: str) -> Hook | None:
    """A classifier stored as a 1x1 convolution's HWIO kernel (1, 1, C, K) -> Dense (C, K)."""
    if layer == "logits" and variable == "kernel":
        return lambda a: a.reshape(a.shape[-2:])
    return None


def conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """PyTorch's OIHW convolution kernel -> Keras' HWIO."""
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def dense_kernel(weight: np.ndarray) -> np.ndarray:
    """``nn.Linear``'s (out, in), or a 1x1 convolution's (out, in, 1, 1) -> Dense's (in, out)."""
    return np.ascontiguousarray(weight.reshape(weight.shape[:2]).T)


def detect_depth(stage3_blocks: int, requested: int | None, path: str | Path, what: str) -> int:
    """The depth whose third stage has ``stage3_blocks`` units (6, 23, 36 -> 50, 101, 152).

    The third stage is the only one whose length differs between all three
    depths; any other count is no ResNet v1 we can build. A ``--depth`` that
    disagrees with the file is an error, never a silent choice.
    """
    detected = next((d for d, units in DEPTHS.items() if units[2] == stage3_blocks), None)
    if detected is None:
        known = ", ".join(f"{units[2]}: ResNet-{depth}" for depth, units in DEPTHS.items())
        raise CheckpointError(
            f"checkpoint {path} has {stage3_blocks} {what} blocks, which is no ResNet v1 depth "
            f"({known})"
        )
    if requested is not None and requested != detected:
        raise CheckpointError(
            f"depth mismatch: --depth {requested} but {path} holds a ResNet-{detected}"
        )
    return detected
