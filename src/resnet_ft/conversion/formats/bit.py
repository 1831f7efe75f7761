"""BiT (Big Transfer: ResNet v2 with GroupNorm and weight standardisation) in both layouts.

timm's state dict (``resnetv2_{50,101}x1_bit*``, safetensors or ``.pth``) and
Google's original ``BiT-{S,M}-R{50,101}x1.npz`` hold the same numbers under
different names; each maps onto the canonical ResNet v2 layers
(``U`` 1-based, ``UU`` its two-digit form; ``bottleneck_v2`` shortened to ``…``):

* ``conv1``: timm ``stem.conv``; npz ``resnet/root_block/standardized_conv2d``
* ``blockB.unit_U.….preact``: ``stages.{B-1}.blocks.{U-1}.norm1``;
  ``resnet/blockB/unitUU/a/group_norm``
* ``….shortcut``: ``….downsample.conv``; ``…/a/proj/standardized_conv2d``
* ``….conv1`` and its norm: ``….conv1``, ``….norm2``; ``…/a/standardized_conv2d``,
  ``…/b/group_norm``
* ``….conv2`` and its norm: ``….conv2``, ``….norm3``; ``…/b/…``, ``…/c/group_norm``
* ``….conv3``: ``….conv3``; ``…/c/standardized_conv2d``
* ``postnorm``: ``norm``; ``resnet/group_norm``
* ``logits``: ``head.fc`` (a 1x1 convolution with bias); ``resnet/head/conv2d``

The letters shift in the npz: ``b/group_norm`` is the norm *after* conv ``a``
(``UU`` is the two-digit unit number). Kernels are OIHW in timm, HWIO in the
npz. The two codes standardise with different epsilons (timm 1e-8, Google's
1e-10), so each layout converts to its own family (``bit``, ``bit_google``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from resnet_ft.conversion.formats.base import (
    Hook,
    LayerRef,
    SourceWeights,
    conv_kernel,
    dense_kernel,
    detect_depth,
    logits_hook,
    parse_layer,
)
from resnet_ft.errors import CheckpointError, one_line
from resnet_ft.models.families import BIT, BIT_GOOGLE, PreactFamily
from resnet_ft.util.zipfiles import ZIP_DAMAGE

SUFFIXES = (".npz",)
TIMM_MARKER = "stem.conv.weight"
_NORM = {"gamma": "weight", "beta": "bias"}
_TIMM_PART = {"conv1": ("conv1", "norm2"), "conv2": ("conv2", "norm3"), "conv3": ("conv3", "")}
_NPZ_PART = {"conv1": ("a", "b"), "conv2": ("b", "c"), "conv3": ("c", "")}
_TIMM_STAGE3 = re.compile(r"^stages\.2\.blocks\.(\d+)\.")
_NPZ_STAGE3 = re.compile(r"^resnet/block3/unit(\d+)/")


def timm_key(ref: LayerRef, variable: str) -> str:
    """The timm state-dict key of one variable of one canonical layer."""
    suffix = "weight" if variable == "kernel" else _NORM.get(variable, variable)
    if ref.part == "conv1" and not ref.stage:
        return f"stem.conv.{suffix}"
    if ref.part in ("postnorm", "logits"):
        return f"{'norm' if ref.part == 'postnorm' else 'head.fc'}.{suffix}"
    unit = f"stages.{ref.stage - 1}.blocks.{ref.unit - 1}"
    if ref.part in ("preact", "shortcut"):
        return f"{unit}.{'norm1' if ref.part == 'preact' else 'downsample.conv'}.{suffix}"
    conv, norm = _TIMM_PART[ref.part]
    return f"{unit}.{norm if ref.batch_norm else conv}.{suffix}"


def npz_key(ref: LayerRef, variable: str) -> str:
    """The Google npz key of one variable of one canonical layer."""
    conv = "standardized_conv2d/kernel"
    if ref.part == "conv1" and not ref.stage:
        return f"resnet/root_block/{conv}"
    if ref.part in ("postnorm", "logits"):
        return (f"resnet/group_norm/{variable}" if ref.part == "postnorm"
                else f"resnet/head/conv2d/{variable}")
    unit = f"resnet/block{ref.stage}/unit{ref.unit:02d}"
    if ref.part == "preact":
        return f"{unit}/a/group_norm/{variable}"
    if ref.part == "shortcut":
        return f"{unit}/a/proj/{conv}"
    letter, after = _NPZ_PART[ref.part]
    return f"{unit}/{after}/group_norm/{variable}" if ref.batch_norm else f"{unit}/{letter}/{conv}"


def from_timm(state: Mapping[str, np.ndarray], path: Path, depth: int | None) -> SourceWeights:
    """A timm BiT state dict (already ``{key: array}``) as source weights."""
    tensors = {key: np.asarray(value) for key, value in state.items()}

    def locate(layer: str, variable: str) -> tuple[str, Hook | None]:
        ref = parse_layer(layer)
        hook = None
        if variable == "kernel":
            hook = dense_kernel if ref.part == "logits" else conv_kernel
        return timm_key(ref, variable), hook

    return _source(BIT, tensors, locate, path, depth, _TIMM_STAGE3, "stages.2",
                   ("head.fc.weight", "head.fc.bias"), numbered_from=0)


def read_npz(path: Path, depth: int | None = None) -> SourceWeights:
    """Read Google's BiT ``.npz`` (numpy's zip of ``.npy`` arrays; no pickles are loaded)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            tensors = {key: np.asarray(archive[key]) for key in archive.files}
    except (*ZIP_DAMAGE, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc

    def locate(layer: str, variable: str) -> tuple[str, Hook | None]:
        return npz_key(parse_layer(layer), variable), logits_hook(layer, variable)

    return _source(BIT_GOOGLE, tensors, locate, path, depth, _NPZ_STAGE3, "resnet/block3",
                   ("resnet/head/conv2d/kernel", "resnet/head/conv2d/bias"), numbered_from=1)


def _source(family: PreactFamily, tensors: dict[str, np.ndarray],
            locate: Callable[[str, str], tuple[str, Hook | None]], path: Path,
            depth: int | None, stage3: re.Pattern[str], what: str, top: tuple[str, str], *,
            numbered_from: int) -> SourceWeights:
    """Depth from the third stage's units (numbered from 0 in timm, 1 in the npz), the head's
    classes, and the source weights."""
    units = [int(m.group(1)) for key in tensors if (m := stage3.match(key))]
    if not units:
        shown = ", ".join(sorted(tensors)[:5]) or "none"
        raise CheckpointError(f"not a BiT checkpoint: {path} has no {what} keys (keys: {shown})")
    count = max(units) + 1 - numbered_from
    bias = tensors.get(top[1])
    return SourceWeights(
        family=family, depth=detect_depth(count, depth, path, what),
        num_classes=0 if bias is None else int(bias.shape[-1]), tensors=tensors,
        locate=locate, source=str(path),
        top_keys=frozenset(key for key in top if key in tensors),
    )
