"""Small valid checkpoints in every format ``convert`` reads, and where their bytes are floats.

A fuzz case damages one file of one of these (:func:`damaged_copy`) and hands
the copy to ``convert``. Whether damage at some offset may still convert
depends on what the byte is: one inside a tensor's float payload leaves the
file parseable (the values change, nothing else does); one in a header, table,
index or directory must be refused, unless no reader ever consults it (HDF5's
free space and unused B-tree slots, zip padding and directory timestamps),
and then the conversion must equal the undamaged file's
(:func:`weights_digest`). :attr:`Specimen.payload` holds the float payload's
byte ranges, found from each format's own structures (safetensors' header, the
zip directory, HDF5's dataset storage offsets, a V2 bundle's data file);
everything else is metadata.

All are ResNet-50 with random weights (the smallest depth ``convert`` knows),
written by the libraries that write real ones: TF's ``SaveV2``/``Save`` ops,
Keras 3 ``save_weights`` and the Keras 2 HDF5 layout, ``torch.save`` and
``safetensors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from resnet_ft.conversion.formats import slim
from resnet_ft.conversion.standin import random_weights, slim_variable_shapes

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Specimen:
    """One valid checkpoint: its files, the one to damage, and what ``convert`` is given."""

    name: str
    files: tuple[Path, ...] = field(repr=False)
    target: Path = field(repr=False)
    source: str = field(repr=False)  # file name given to ``convert``, beside ``files``
    payload: Ranges = field(repr=False)  # byte ranges of ``target`` that hold float data only

    @property
    def size(self) -> int:
        return self.target.stat().st_size

    def in_payload(self, start: int, stop: int) -> bool:
        """Whether the bytes ``[start, stop)`` all lie inside one float payload range."""
        return any(low <= start and stop <= high for low, high in self.payload)

    def metadata(self) -> Ranges:
        """The complement of :attr:`payload`: headers, tables, indexes, directories."""
        edges, start = [], 0
        for low, high in sorted(self.payload):
            if low > start:
                edges.append((start, low))
            start = max(start, high)
        if start < self.size:
            edges.append((start, self.size))
        return tuple(edges)


def write_corpus(directory: Path) -> dict[str, Specimen]:
    """Every format's specimen, each in its own subfolder of ``directory``."""
    values = random_weights(slim_variable_shapes(50), seed=1)
    specimens = [*_slim(directory, values), *_keras(directory), *_torch(directory)]
    return {specimen.name: specimen for specimen in specimens}


def _slim(directory: Path, values: dict[str, np.ndarray]) -> list[Specimen]:
    """V2 (``.index`` + one ``.data`` shard) and the single-file V1 of the 2016 release."""
    import tensorflow as tf

    v2 = directory / "slim_v2" / "model.ckpt"
    slim.write(values, v2)
    index, data = Path(f"{v2}.index"), next(v2.parent.glob("model.ckpt.data-*"))
    v1 = directory / "slim_v1" / "model.ckpt"
    v1.parent.mkdir(parents=True)
    names = sorted(values)
    tf.raw_ops.Save(filename=str(v1), tensor_names=names,
                    data=[tf.constant(values[name]) for name in names])
    return [
        Specimen("slim_v2_index", (index, data), index, v2.name, ()),
        Specimen("slim_v2_data", (index, data), data, v2.name, ((0, data.stat().st_size),)),
        # V1 blocks are checksummed like the data shard is: no byte is harmless to flip
        Specimen("slim_v1", (v1,), v1, v1.name, ()),
    ]


def _keras(directory: Path) -> list[Specimen]:
    """keras.applications.ResNet50's weights as Keras 3 ``save_weights`` and in Keras 2 HDF5."""
    import keras

    from support.keras_reference import write_legacy_h5

    keras.utils.set_random_seed(2)
    model = keras.applications.ResNet50(weights=None)
    keras3 = directory / "keras3" / "resnet50.weights.h5"
    keras2 = directory / "keras2" / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    keras3.parent.mkdir(parents=True)
    keras2.parent.mkdir(parents=True)
    model.save_weights(keras3)
    write_legacy_h5(model, keras2, include_top=True)
    return [Specimen(name, (path,), path, path.name, _hdf5_payload(path))
            for name, path in (("keras3", keras3), ("keras2", keras2))]


def _torch(directory: Path) -> list[Specimen]:
    """A torchvision-layout state dict, as ``.safetensors`` and as ``torch.save``'s ``.pth``."""
    import torch
    from safetensors.numpy import save_file

    from support.torch_reference import LAYERS, ResNet

    torch.manual_seed(3)
    state = ResNet(LAYERS[50]).state_dict()
    safetensors = directory / "safetensors" / "resnet50.safetensors"
    pth = directory / "pth" / "resnet50.pth"
    safetensors.parent.mkdir(parents=True)
    pth.parent.mkdir(parents=True)
    save_file({key: value.numpy().copy() for key, value in state.items()}, str(safetensors))
    torch.save(state, pth)
    return [
        Specimen("safetensors", (safetensors,), safetensors, safetensors.name,
                 (_safetensors_payload(safetensors),)),
        Specimen("pth", (pth,), pth, pth.name, _zip_payload(pth, "/data/")),
    ]


def _safetensors_payload(path: Path) -> tuple[int, int]:
    """Everything after the 8-byte length and the JSON header it gives."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    return 8 + length, path.stat().st_size


def _zip_payload(path: Path, marker: str) -> Ranges:
    """The stored (uncompressed) data of the archive members whose names contain ``marker``."""
    ranges = []
    with zipfile.ZipFile(path) as archive, path.open("rb") as handle:
        for info in archive.infolist():
            if marker not in info.filename:
                continue
            handle.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", handle.read(4))
            start = info.header_offset + 30 + name_length + extra_length
            ranges.append((start, start + info.compress_size))
    return tuple(ranges)


def _hdf5_payload(path: Path) -> Ranges:
    """The contiguous storage of every float dataset, from HDF5's own layout records."""
    import h5py

    ranges = []

    def visit(_: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f" and item.size:
            offset = item.id.get_offset()
            ranges.append((offset, offset + item.id.get_storage_size()))

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return tuple(ranges)


def damaged_copy(specimen: Specimen, folder: Path, *, truncate: int | None = None,
                 flip: tuple[int, int] | None = None) -> Path:
    """The specimen in ``folder`` with its target cut to ``truncate`` bytes or one byte XORed
    (``flip`` = (offset, mask)); returns the path to give ``convert``.

    The other files are hard links (``convert`` never writes its input); the target is a
    kernel-side copy damaged in place, so no 100 MB buffer passes through Python.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for path in specimen.files:
        if path != specimen.target:
            os.link(path, folder / path.name)
    target = folder / specimen.target.name
    shutil.copyfile(specimen.target, target)
    if truncate is not None:
        os.truncate(target, truncate)
    if flip is not None:
        offset, mask = flip
        with target.open("r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)[0]
            handle.seek(offset)
            handle.write(bytes([byte ^ mask]))
    return folder / specimen.source


def weights_digest(model_file: Path) -> str:
    """SHA-256 of a ``.keras`` file's weights (deterministic; its metadata names the source)."""
    with zipfile.ZipFile(model_file) as archive:
        return hashlib.sha256(archive.read("model.weights.h5")).hexdigest()


def edited_safetensors(specimen: Specimen, folder: Path, edit: Callable[[dict], None],
                       length: int | None = None) -> Path:
    """The safetensors specimen in ``folder`` with ``edit`` applied to its JSON header (and the
    header's length field set to ``length``, when given): a header that lies, well-formed."""
    raw = specimen.target.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = folder / specimen.target.name
    path.write_bytes(struct.pack("<Q", length or len(text)) + text + raw[8 + size:])
    return path


def edited_bundle(index: Path, data: Path, folder: Path,
                  edit: Callable[[str, object], None]) -> Path:
    """A V2 checkpoint in ``folder`` whose index has ``edit(name, proto)`` applied to each entry
    (the header's name is ``""``), rewritten with valid checksums; returns its prefix."""
    from tensorflow.core.protobuf.tensor_bundle_pb2 import BundleEntryProto, BundleHeaderProto

    from support.sstable import read_table, write_table

    os.link(data, folder / data.name)
    entries = []
    for key, value in read_table(index.read_bytes()):
        proto = (BundleHeaderProto if key == b"" else BundleEntryProto).FromString(value)
        edit(key.decode(), proto)
        entries.append((key, proto.SerializeToString()))
    (folder / index.name).write_bytes(write_table(entries))
    return folder / index.name.removesuffix(".index")


def edited_v1(folder: Path, values: dict[str, np.ndarray], edit: Callable[[object], None]) -> Path:
    """A V1 checkpoint of ``values`` (written by TF's ``Save`` op) whose tensor list has
    ``edit`` applied to its first tensor's metadata, rewritten with valid checksums."""
    import tensorflow as tf
    from tensorflow.core.util.saved_tensor_slice_pb2 import SavedTensorSlices

    from support.sstable import read_table, write_table

    path = folder / "model.ckpt"
    names = sorted(values)
    tf.raw_ops.Save(filename=str(path), tensor_names=names,
                    data=[tf.constant(values[name]) for name in names])
    entries = []
    for key, value in read_table(path.read_bytes()):
        if key == b"":
            slices = SavedTensorSlices.FromString(value)
            edit(slices.meta.tensor[0])
            value = slices.SerializeToString()
        entries.append((key, value))
    path.write_bytes(write_table(entries))
    return path


def edited_keras3(specimen: Specimen, folder: Path, *, shape: tuple[int, ...] | None = None,
                  dtype: str | None = None, flatten: bool = False) -> Path:
    """The Keras 3 specimen in ``folder`` with conv2_block2_1_conv's kernel replaced by a
    dataset of ``shape`` declared and never written, or by its values as ``dtype``, or
    flattened; written by h5py, so the file itself is well-formed."""
    import h5py

    path = folder / specimen.target.name
    shutil.copyfile(specimen.target, path)
    with h5py.File(path, "r+") as handle:
        group = handle["layers/conv2d_5/vars"]
        values = group["0"][()]
        del group["0"]
        if shape is not None:
            group.create_dataset("0", shape=shape, dtype="f4")
        else:
            group["0"] = values.reshape(-1) if flatten else values.astype(dtype)
    return path
