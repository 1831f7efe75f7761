"""keras.applications ``ResNet{50,101,152}`` and ``ResNet*V2`` weights in HDF5, both Keras layouts.

Read with h5py; no Keras model is built or deserialised. Two layouts:

* **Keras 2 (legacy)**: the published ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``
  and ``..._notop.h5`` files (also ``model.save("x.h5")``, under ``model_weights``).
  The ``layer_names`` attribute lists the layers; each layer's group lists its
  ``weight_names`` (``conv1_conv/kernel:0``), each the path of a dataset inside
  that group. This is exactly what Keras' own ``load_weights_from_hdf5_group``
  follows.
* **Keras 3** ``.weights.h5`` from ``model.save_weights``: ``layers/<group>/vars/<i>``,
  where the group is named after the layer's *class*, numbered in
  ``model.layers`` order (``conv2d``, ``conv2d_1``, ``batch_normalization_7``,
  ``dense``) and ``vars`` are numbered in creation order (kernel, bias / gamma,
  beta, moving_mean, moving_variance). Keras >= 3.10 records the layer name as
  the ``name`` attribute of ``vars``; for files from older Keras 3 releases the
  name follows from the position (:func:`keras3_layer_order`).

Both are read into ``"<keras layer>/<variable>"`` keys, so one name map serves both:

===================================  ==============================================
keras.applications                   canonical layer
===================================  ==============================================
``conv1_conv``, ``conv1_bn``         ``conv1``, ``conv1.BatchNorm``
``conv{S+1}_block{U}_{K}_conv``      ``block{S}.unit_{U}.bottleneck_v1.conv{K}`` (K = 1, 2, 3)
``conv{S+1}_block{U}_0_conv``        ``block{S}.unit_{U}.bottleneck_v1.shortcut``
``..._bn``                           the same name + ``.BatchNorm``
``predictions`` or ``probs``         ``logits`` (``probs``: keras-applications' name)
``conv{S+1}_block{U}_preact_bn``     ``block{S}.unit_{U}.bottleneck_v2.preact`` (V2)
``post_bn``                          ``postnorm`` (V2)
===================================  ==============================================

A file is a V2 when it has pre-activation norms (``*_preact_bn``, ``post_bn``);
a Keras 3 file that records no names is told by its count of BatchNorm layers
(V2 has four fewer than convolutions: no norm after the stem or a shortcut, one
after the last unit).

The classifier's softmax is not part of the backbone: ``logits`` is the Dense
layer's pre-activation output.

ResNet v1's caffe preprocessing flips RGB to BGR, then subtracts the BGR means (V2
takes RGB scaled to [-1, 1] and needs no flip). The backbone does not flip pixels:
``KERAS_APPLICATIONS.normalization`` holds those means in RGB order, and this
reader reverses the input-channel axis of the v1 ``conv1`` kernel
(``kernel[:, :, ::-1, :]``), so the first convolution sees each channel with the
weights that were trained for it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from resnet_ft.conversion.formats.base import (
    Hook,
    LayerRef,
    SourceWeights,
    detect_depth,
    parse_layer,
)
from resnet_ft.errors import CheckpointError, one_line
from resnet_ft.models.families import DEPTHS, KERAS_APPLICATIONS, KERAS_V2

SUFFIXES = (".h5", ".hdf5")
#: Name of the 1000-way Dense: Keras' own, then keras-applications' (the published files).
TOP_LAYERS = ("predictions", "probs")
#: A Keras 3 layer group's ``vars/0..n`` by the group's class name.
KERAS3_VARIABLES: dict[str, tuple[str, ...]] = {
    "conv2d": ("kernel", "bias"),
    "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "dense": ("kernel", "bias"),
}
_STAGE3_BLOCK = re.compile(r"^conv4_block(\d+)_")

Layers = dict[str, dict[str, np.ndarray]]


def keras3_layer_order(depth: int, kind: str, v2: bool = False) -> list[str]:
    """Names of keras.applications' ``kind`` layers (``conv`` or ``bn``) in ``model.layers`` order.

    Keras sorts a functional model's layers by graph depth, which puts a
    projection unit's shortcut after its second convolution: ``_1, _2, _0, _3``.
    In V2 only ``_1``/``_2`` are followed by a norm; ``preact`` leads each unit
    and ``post_bn`` ends the network. Only needed for Keras 3 files that do not
    record layer names.
    """
    if v2 and kind == "bn":
        units = [f"conv{stage + 2}_block{unit}_{part}_bn"
                 for stage, count in enumerate(DEPTHS[depth]) for unit in range(1, count + 1)
                 for part in ("preact", 1, 2)]
        return [*units, "post_bn"]
    names = [f"conv1_{kind}"]
    for stage, count in enumerate(DEPTHS[depth]):
        for unit in range(1, count + 1):
            parts = (1, 2, 0, 3) if unit == 1 else (1, 2, 3)
            names += [f"conv{stage + 2}_block{unit}_{part}_{kind}" for part in parts]
    return names


def keras_layer(ref: LayerRef, top: str) -> str:
    """The keras.applications layer holding the weights of one canonical layer."""
    if ref.part == "logits":
        return top
    if ref.part == "postnorm":
        return "post_bn"
    if ref.part == "preact":
        return f"conv{ref.stage + 1}_block{ref.unit}_preact_bn"
    kind = "bn" if ref.batch_norm else "conv"
    if ref.stage == 0:
        return f"conv1_{kind}"
    index = 0 if ref.part == "shortcut" else int(ref.part[-1])
    return f"conv{ref.stage + 1}_block{ref.unit}_{index}_{kind}"


def _rgb_kernel(kernel: np.ndarray) -> np.ndarray:
    """The BGR-trained first kernel as an RGB one (see the module docstring)."""
    return np.ascontiguousarray(kernel[:, :, ::-1, :])


def read(path: Path, depth: int | None = None) -> SourceWeights:
    """Read either Keras HDF5 layout; detect the depth from the number of conv4 blocks."""
    try:
        with h5py.File(path, "r") as handle:
            layers = _read_layers(handle, path)
    # h5py on corrupt/truncated files; MemoryError: an attribute whose dataspace was damaged
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, MemoryError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc
    blocks = [int(m.group(1)) for name in layers if (m := _STAGE3_BLOCK.match(name))]
    if not blocks:
        shown = ", ".join(sorted(layers)[:5]) or "none"
        raise CheckpointError(
            f"not a keras.applications ResNet: {path} has no conv4_block* layers "
            f"(layers with weights: {shown})"
        )
    detected = detect_depth(max(blocks), depth, path, "conv4")
    tensors = {
        f"{layer}/{variable}": value
        for layer, variables in layers.items()
        for variable, value in variables.items()
    }
    top = next((name for name in TOP_LAYERS if name in layers), TOP_LAYERS[0])
    bias = tensors.get(f"{top}/bias")
    v2 = "post_bn" in layers or any(name.endswith("_preact_bn") for name in layers)

    def locate(layer: str, variable: str) -> tuple[str, Hook | None]:
        bgr = not v2 and (layer, variable) == ("conv1", "kernel")
        return f"{keras_layer(parse_layer(layer), top)}/{variable}", _rgb_kernel if bgr else None

    return SourceWeights(
        family=KERAS_V2 if v2 else KERAS_APPLICATIONS, depth=detected,
        num_classes=0 if bias is None else int(bias.shape[-1]), tensors=tensors,
        locate=locate, source=str(path),
        top_keys=frozenset(key for key in tensors if key.startswith(f"{top}/")),
    )


def _read_layers(handle: h5py.File, path: Path) -> Layers:
    """``{keras layer name: {variable: array}}`` from whichever layout ``handle`` has."""
    root = handle.get("model_weights", handle)  # model.save("x.h5") nests the weights
    if _string_list(root.attrs, "layer_names"):
        return _legacy_layers(root)
    if isinstance(handle.get("layers"), h5py.Group):
        return _keras3_layers(handle["layers"], path)
    top = ", ".join(sorted(handle)[:5]) or "none"
    raise CheckpointError(
        f"not a Keras weights file: {path} is HDF5 but has neither a Keras 2 'layer_names' "
        f"list nor a Keras 3 'layers' group (top-level entries: {top})"
    )


def _legacy_layers(root: h5py.Group) -> Layers:
    layers: Layers = {}
    for name in _string_list(root.attrs, "layer_names"):
        group = root[name]
        layers[name] = {
            weight.rsplit("/", 1)[-1].split(":", 1)[0]: _array(group[weight])
            for weight in _string_list(group.attrs, "weight_names")
        }
    return {name: variables for name, variables in layers.items() if variables}


def _keras3_layers(groups: h5py.Group, path: Path) -> Layers:
    stored: dict[str, list[np.ndarray]] = {}
    recorded: dict[str, str] = {}
    for key, group in groups.items():
        variables = group.get("vars") if isinstance(group, h5py.Group) else None
        if not isinstance(variables, h5py.Group) or not len(variables):
            continue
        stored[key] = [_array(variables[str(i)]) for i in range(len(variables))]
        if "name" in variables.attrs:
            recorded[key] = _decode(variables.attrs["name"])
    names = recorded if len(recorded) == len(stored) else _names_from_order(list(stored), path)
    layers: Layers = {}
    for key, values in stored.items():
        kind, _ = _class_group(key)
        variables = KERAS3_VARIABLES.get(kind, tuple(str(i) for i in range(len(values))))
        layers[names[key]] = dict(zip(variables, values, strict=False))
    return layers


def _names_from_order(keys: list[str], path: Path) -> dict[str, str]:
    """Layer names for a Keras 3 file that records none (Keras < 3.10), from group numbering."""
    by_kind: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key in keys:
        kind, number = _class_group(key)
        by_kind[kind].append((number, key))
    convs, norms = len(by_kind["conv2d"]), len(by_kind["batch_normalization"])
    depth = next((d for d in DEPTHS if len(keras3_layer_order(d, "conv")) == convs), None)
    if depth is None:
        raise CheckpointError(
            f"not a keras.applications ResNet: {path} records no layer names (Keras < 3.10) "
            f"and its {convs} Conv2D layers fit no ResNet depth"
        )
    v2 = norms == len(keras3_layer_order(depth, "bn", v2=True))
    expected = {
        "conv2d": keras3_layer_order(depth, "conv"),
        "batch_normalization": keras3_layer_order(depth, "bn", v2),
        "dense": [TOP_LAYERS[0]],
    }
    # Groups beyond the expected ones keep their own names and are reported as unexpected.
    names = {key: key for key in keys}
    for kind, order in expected.items():
        found = [key for _, key in sorted(by_kind[kind])]
        names.update(zip(found, order, strict=False))
    return names


def _class_group(key: str) -> tuple[str, int]:
    """Keras 3 group name -> (class, number): ``batch_normalization_7``, ``dense`` (number 0)."""
    head, _, number = key.rpartition("_")
    return (head, int(number)) if head and number.isdigit() else (key, 0)


def _string_list(attrs: h5py.AttributeManager, name: str) -> list[str]:
    """A Keras string-list attribute; Keras splits long ones into ``name0``, ``name1``, ..."""
    if name in attrs:
        values = list(attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in attrs:
            values.extend(attrs[f"{name}{chunk}"])
            chunk += 1
    return [_decode(value) for value in values]


def _decode(value: object) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _array(dataset: h5py.Dataset) -> np.ndarray:
    """A dataset's values, once its declared size is known to fit the bytes that hold it.

    HDF5 takes a dataspace at its word: a damaged one declaring terabytes (or a
    dataset never written) would be allocated and filled before anything fails,
    so a declaration larger than the file, or one a contiguous dataset's storage
    does not match, is refused first (a ``ValueError``, reported by :func:`read`).
    """
    if dataset.shape is None:
        raise ValueError(f"dataset {dataset.name} has no dataspace (corrupt file?)")
    declared = dataset.size * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    contiguous = dataset.chunks is None and dataset.dtype.kind in "biufc"
    if declared > dataset.file.id.get_filesize() or (contiguous and stored != declared):
        raise ValueError(
            f"dataset {dataset.name} declares shape {dataset.shape} of {dataset.dtype} "
            f"({declared} bytes) but stores {stored} bytes (corrupt file?)"
        )
    return np.asarray(dataset[()])  # dtype checked when ported
