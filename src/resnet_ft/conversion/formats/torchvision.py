"""torchvision / timm ``resnet{50,101,152}`` state dicts: ``.safetensors`` or ``.pth``/``.pt``.

``.safetensors`` is read with the ``safetensors`` package's numpy backend, so
no PyTorch is needed; ``.pth``/``.pt`` are pickles that only ``torch.load``
(``weights_only=True``: tensors and containers, no code) can read.

Name map (torchvision's keys; timm's ``resnet50`` & co. use the same ones):

==================================  ======================================================
state dict key                      canonical layer (``bottleneck_v1`` shortened to ``…``)
==================================  ======================================================
``conv1.weight``, ``bn1.*``         ``conv1``, ``conv1.BatchNorm``
``layer{S}.{U-1}.conv{K}.weight``   ``block{S}.unit_{U}.….conv{K}`` (K = 1, 2, 3)
``layer{S}.{U-1}.bn{K}.*``          ``block{S}.unit_{U}.….conv{K}.BatchNorm``
``layer{S}.0.downsample.0.weight``  ``block{S}.unit_1.….shortcut``
``layer{S}.0.downsample.1.*``       ``block{S}.unit_1.….shortcut.BatchNorm``
``fc.weight``, ``fc.bias``          ``logits``
==================================  ======================================================

BatchNorm: ``weight``/``bias``/``running_mean``/``running_var`` are gamma, beta
and the moving statistics; ``num_batches_tracked`` is a training counter and is
ignored. Layouts: torch convolution kernels are OIHW and Keras' HWIO (one
transpose hook); ``fc.weight`` is ``(classes, 2048)``, the transpose of a Dense kernel.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from resnet_ft.conversion.formats import bit
from resnet_ft.conversion.formats.base import (
    Hook,
    LayerRef,
    SourceWeights,
    conv_kernel,
    dense_kernel,
    detect_depth,
    parse_layer,
)
from resnet_ft.errors import CheckpointError, one_line
from resnet_ft.models.families import TORCHVISION
from resnet_ft.util.zipfiles import ZIP_DAMAGE

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt")
#: Keras variable -> torch parameter or buffer name (convolutions and BN alike).
TORCH_VARIABLES = {
    "kernel": "weight",
    "bias": "bias",
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
NON_MODEL_SUFFIXES = ("num_batches_tracked",)
TOP_KEYS = ("fc.weight", "fc.bias")
_STAGE3_BLOCK = re.compile(r"^layer3\.(\d+)\.")
_BOTTLENECK = re.compile(r"^layer\d\.\d+\.conv3\.")
#: The reason inside ``torch.load``'s many-line "Weights only load failed" message.
_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", re.S)


def torch_key(ref: LayerRef, variable: str) -> str:
    """The state-dict key holding one variable of one canonical layer."""
    if ref.part == "logits":
        return f"fc.{TORCH_VARIABLES[variable]}"
    prefix = f"layer{ref.stage}.{ref.unit - 1}." if ref.stage else ""
    if ref.part == "shortcut":
        module = "downsample.1" if ref.batch_norm else "downsample.0"
    else:
        number = ref.part[-1]
        module = f"bn{number}" if ref.batch_norm else f"conv{number}"
    return f"{prefix}{module}.{TORCH_VARIABLES[variable]}"


def read_safetensors(path: Path, depth: int | None = None) -> SourceWeights:
    """Read a ``.safetensors`` state dict without PyTorch."""
    from safetensors.numpy import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, dtype errors: one line for the user
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc
    return _from_state_dict(state, path, depth)


def read_torch(path: Path, depth: int | None = None) -> SourceWeights:
    """Read a ``torch.save``-d state dict; needs PyTorch, which is no dependency of ours."""
    try:
        import torch
    except ImportError as exc:
        raise CheckpointError(
            f"reading {path} needs PyTorch, which is not installed: pip install torch, "
            "or save the state dict as .safetensors (read without torch)"
        ) from exc
    _verify_archive(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and torch errors alike: one line for the user
        raise CheckpointError(f"cannot read checkpoint {path}: {_torch_reason(exc)}") from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        keys = ", ".join(map(str, list(state)[:5])) if isinstance(state, Mapping) else ""
        raise CheckpointError(
            f"not a state dict: {path} holds a {type(state).__name__}"
            + (f" with keys {keys}" if keys else "")
            + " instead of names -> tensors (save model.state_dict() itself)"
        )
    # numpy has no bfloat16: those become float32; other dtypes stay, checked when ported
    arrays = {str(key): (value.detach().cpu().float() if value.dtype == torch.bfloat16
                         else value.detach().cpu()).numpy() for key, value in state.items()}
    return _from_state_dict(arrays, path, depth)


def _verify_archive(path: Path) -> None:
    """Check every member of a ``torch.save`` zip archive against its recorded CRC-32.

    PyTorch's reader skips the checksums, so one flipped byte in ``data.pkl`` can
    point a tensor at another tensor's storage and load without complaint.
    Legacy (pre-1.6) files are plain pickles with no checksums, and members saved
    with ``torch.serialization.set_crc32_options(False)`` record none (0): both are
    left to ``torch.load``.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size:
                    continue
                with archive.open(info) as member:  # raises at the end on a CRC mismatch
                    while member.read(1 << 22):
                        pass
    except ZIP_DAMAGE as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc


def _torch_reason(exc: BaseException) -> str:
    """What ``torch.load`` found wrong, without its advice to load the file unsafely."""
    match = _UNPICKLER.search(str(exc))
    if match and match.group(1).strip():
        return f"PyTorch's safe loader refused it ({' '.join(match.group(1).split())})"
    return one_line(exc)


def _from_state_dict(
    state: Mapping[str, np.ndarray], path: Path, depth: int | None
) -> SourceWeights:
    """The reader proper, once both file formats have become ``{key: array}``."""
    if bit.TIMM_MARKER in state:  # timm's ResNet v2 / BiT layout
        return bit.from_timm(state, path, depth)
    ignored = frozenset(key for key in state if key.endswith(NON_MODEL_SUFFIXES))
    tensors = {key: np.asarray(value) for key, value in state.items() if key not in ignored}
    blocks = [int(m.group(1)) + 1 for key in tensors if (m := _STAGE3_BLOCK.match(key))]
    if not blocks:
        shown = ", ".join(sorted(tensors)[:5]) or "none"
        raise CheckpointError(
            f"not a torchvision/timm ResNet state dict: {path} has no layer3.* keys "
            f"(keys: {shown})"
        )
    if not any(_BOTTLENECK.match(key) for key in tensors):
        raise CheckpointError(
            f"{path} is a basic-block ResNet (no layer*.conv3, as in ResNet-18/34); "
            "only the bottleneck ResNet-50/101/152 are supported"
        )
    detected = detect_depth(max(blocks), depth, path, "layer3")
    bias = tensors.get("fc.bias")

    def locate(layer: str, variable: str) -> tuple[str, Hook | None]:
        ref = parse_layer(layer)
        hook = None
        if variable == "kernel":
            hook = dense_kernel if ref.part == "logits" else conv_kernel
        return torch_key(ref, variable), hook

    return SourceWeights(
        family=TORCHVISION, depth=detected,
        num_classes=0 if bias is None else int(bias.shape[-1]), tensors=tensors,
        locate=locate, source=str(path), ignored=ignored,
        top_keys=frozenset(key for key in TOP_KEYS if key in tensors),
    )
