"""Checkpoint readers: each turns one family's files into a :class:`SourceWeights`.

A reader knows its file format and its name map (source key for each
canonical layer variable, plus the transform that brings the array into Keras
layout). It does not build models or assign weights: :mod:`resnet_ft.conversion.porting`
does that once for every family, so the checks for missing, mismatched and
unexpected variables are written once.

Formats are told apart by content first (HDF5, safetensors and PyTorch's zip
archive each start with an unambiguous signature, whatever the file is
called), then by name (TF-slim's prefix/``.index``/directory, and suffixes for
files whose content was not recognised, so that a corrupt ``.h5`` is reported
by the HDF5 reader rather than as an unknown format).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from resnet_ft.conversion.formats.base import SourceWeights
from resnet_ft.errors import CheckpointError
from resnet_ft.util.zipfiles import ZIP_DAMAGE

__all__ = ["FORMATS_HELP", "FORMAT_EXAMPLES", "SourceWeights", "detect_format", "read_checkpoint"]

FORMATS_HELP = (
    "a TF-slim checkpoint (prefix such as resnet_v1_101.ckpt or resnet_v2_50.ckpt, its .index "
    "file, or a directory holding one), keras.applications ResNet or ResNetV2 weights in HDF5 "
    "(Keras 2 .h5 such as resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5, or a Keras 3 "
    ".weights.h5), a torchvision/timm ResNet or BiT state dict (.safetensors, or .pth/.pt "
    "with PyTorch installed), or Google's BiT .npz"
)

#: (format, example command line) for ``resnet-ft convert --help`` and docs/commands/convert.md.
FORMAT_EXAMPLES: list[tuple[str, str]] = [
    ("TF-slim checkpoint: prefix, .index file or directory",
     "resnet-ft convert resnet_v1_101.ckpt -o backbone.keras"),
    ("keras.applications, Keras 2 HDF5 (the published files)",
     "resnet-ft convert resnet101_weights_tf_dim_ordering_tf_kernels.h5 -o backbone.keras "
     "--include-top"),
    ("keras.applications, Keras 2 HDF5 without classifier",
     "resnet-ft convert resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 -o backbone.keras"),
    ("keras.applications.ResNet50/101/152, Keras 3 save_weights",
     "resnet-ft convert resnet152.weights.h5 -o backbone.keras"),
    ("torchvision/timm state dict, safetensors (no PyTorch needed)",
     "resnet-ft convert model.safetensors -o backbone.keras --include-top"),
    ("torchvision/timm state dict, torch.save (needs PyTorch)",
     "resnet-ft convert resnet50-19c8e357.pth -o backbone.keras"),
    ("keras.applications ResNet50V2/101V2/152V2, either HDF5 layout",
     "resnet-ft convert resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5 -o backbone.keras"),
    ("TF-slim ResNet v2 checkpoint (resnet_v2_50/101/152)",
     "resnet-ft convert resnet_v2_101.ckpt -o backbone.keras"),
    ("BiT in timm's layout (resnetv2_50x1_bit), safetensors",
     "resnet-ft convert resnetv2_50x1_bit.safetensors -o backbone.keras"),
    ("BiT in Google's layout (BiT-M-R50x1.npz)",
     "resnet-ft convert BiT-M-R50x1.npz -o backbone.keras"),
]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def detect_format(path: Path) -> str | None:
    """``"slim"``, ``"keras"``, ``"safetensors"``, ``"torch"``, ``"npz"`` or ``None``."""
    from resnet_ft.conversion.formats import bit, keras_h5, slim, torchvision

    if path.is_file():
        sniffed = _sniff(path)
        if sniffed:
            return sniffed
    if slim.looks_like_slim(path):
        return "slim"
    by_suffix = {
        **dict.fromkeys(keras_h5.SUFFIXES, "keras"),
        **dict.fromkeys(torchvision.SAFETENSORS_SUFFIXES, "safetensors"),
        **dict.fromkeys(torchvision.TORCH_SUFFIXES, "torch"),
        **dict.fromkeys(bit.SUFFIXES, "npz"),
    }
    return by_suffix.get(path.suffix.lower())


def read_checkpoint(path: str | Path, depth: int | None = None) -> SourceWeights:
    """Detect the checkpoint format of ``path`` and read it.

    ``depth`` overrides the depth detected from the contents; a disagreement
    between the two is an error, not a silent choice.
    """
    from resnet_ft.conversion.formats import bit, keras_h5, slim, torchvision

    path = Path(path)
    if not path.exists() and not slim.looks_like_prefix(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    readers: dict[str, Callable[[Path, int | None], SourceWeights]] = {
        "slim": slim.read,
        "keras": keras_h5.read,
        "safetensors": torchvision.read_safetensors,
        "torch": torchvision.read_torch,
        "npz": bit.read_npz,
    }
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty")
    kind = detect_format(path)
    if kind is None:
        raise CheckpointError(
            f"unrecognised checkpoint format: {path} is neither a TF-slim checkpoint nor an "
            f"HDF5, safetensors, PyTorch or numpy .npz file; expected {FORMATS_HELP}"
        )
    if kind != "slim" and path.is_dir():  # named like a file of that format
        raise CheckpointError(f"cannot read checkpoint {path}: it is a directory, not a file")
    return readers[kind](path, depth)


def _sniff(path: Path) -> str | None:
    """The format a file's first bytes prove, if any."""
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if head.startswith(_HDF5_SIGNATURE):
        return "keras"
    # safetensors: little-endian u64 header length, then the JSON header itself.
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except ZIP_DAMAGE:  # the reader the suffix picks says more
            return None
        if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "torch"
        if names and all(name.endswith(".npy") for name in names):
            return "npz"
    return None
