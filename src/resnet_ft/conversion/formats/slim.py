"""TF-slim ``resnet_v1_{50,101,152}`` and ``resnet_v2_*`` checkpoints (official ``.ckpt`` files).

Read with TensorFlow's checkpoint reader, which handles both the V2 layout
(``.index`` + ``.data-*``) and the single-file V1 layout of the 2016 release,
with no TF1 session, once :mod:`~resnet_ft.conversion.formats.tf_tables` has
checked the tables (that reader aborts the whole process on some damage). The
name map is one line: the Keras layer ``block3.unit_23.bottleneck_v1.conv2`` is
the slim scope ``resnet_v1_101/block3/unit_23/bottleneck_v1/conv2``; slim
kernels are already HWIO, so only the 1x1-conv logits need a reshape to a Dense
kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from resnet_ft.conversion.formats.base import Hook, SourceWeights, detect_depth, logits_hook
from resnet_ft.conversion.formats.tf_tables import check_checkpoint
from resnet_ft.errors import CheckpointError, one_line
from resnet_ft.models.families import SLIM, SLIM_V2

#: Keras variable name -> slim variable name.
VARIABLE_NAMES = {
    "kernel": "weights",
    "bias": "biases",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
}
#: Present in official or fine-tuned checkpoints, never part of the network.
NON_MODEL_SUFFIXES = ("global_step", "mean_rgb", "/Momentum", "/Adam", "/Adam_1", "/RMSProp",
                      "/RMSProp_1", "/ExponentialMovingAverage")
#: What TensorFlow's reader raises besides OpError (e.g. IndexError on a short file).
_READ_ERRORS = (ValueError, IndexError, OSError, RuntimeError)
_SCOPE = re.compile(r"^(resnet_v[12]_\d+)/")
_UNIT = re.compile(r"^[^/]+/(block\d)/unit_(\d+)/")


def looks_like_prefix(path: Path) -> bool:
    """True when ``path`` is a V2 checkpoint prefix (``path.index`` exists)."""
    return Path(f"{path}.index").is_file()


def looks_like_slim(path: Path) -> bool:
    """Whether ``path`` names a TensorFlow checkpoint by its files (not yet its contents)."""
    if path.is_dir():
        return any(path.glob("*.index")) or any(path.glob("*.ckpt"))
    return path.suffix in (".index", ".ckpt") or looks_like_prefix(path)


def resolve_prefix(path: Path) -> Path:
    """Turn a prefix, an ``.index`` file or a directory into the reader's prefix."""
    if path.is_dir():
        found = sorted(p.with_suffix("") for p in path.glob("*.index")) or sorted(
            p for p in path.glob("*.ckpt") if p.is_file()
        )
        if not found:
            raise CheckpointError(f"no checkpoint (*.index or *.ckpt) in directory {path}")
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise CheckpointError(f"several checkpoints in {path} ({names}); name one of them")
        return found[0]
    if path.suffix == ".index":
        return path.with_suffix("")
    return path


def slim_key(scope: str, layer: str, variable: str) -> str:
    """The slim variable name of one Keras layer variable."""
    return f"{scope}/{layer.replace('.', '/')}/{VARIABLE_NAMES[variable]}"


def _scope_and_units(names: list[str], path: Path) -> tuple[str, int]:
    """The network's top scope (``resnet_v1_101``) and how many units its block3 has."""
    scopes = sorted({m.group(1) for n in names if (m := _SCOPE.match(n))})
    if not scopes:
        tops = sorted({n.split("/", 1)[0] for n in names})[:5]
        raise CheckpointError(
            f"not a TF-slim ResNet checkpoint: {path} has no variables under "
            f"resnet_v1_{{50,101,152}}/ or resnet_v2_*/ (top-level names: "
            f"{', '.join(tops) or 'none'})"
        )
    if len(scopes) > 1:
        raise CheckpointError(f"checkpoint {path} holds several networks: {', '.join(scopes)}")
    scope = scopes[0]
    units = {int(m.group(2)) for n in names
             if (m := _UNIT.match(n)) and n.startswith(scope + "/") and m.group(1) == "block3"}
    return scope, max(units, default=0)


def read(path: Path, depth: int | None = None) -> SourceWeights:
    """Read a slim checkpoint; detect its depth from the unit counts per block."""
    import tensorflow as tf

    prefix = resolve_prefix(path)
    check_checkpoint(prefix, path)  # TensorFlow's reader aborts the process on some damage
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes = reader.get_variable_to_shape_map()
    except (*_READ_ERRORS, tf.errors.OpError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc
    names = sorted(shapes)
    scope, block3_units = _scope_and_units(names, path)
    detected = detect_depth(block3_units, depth, path, "block3")
    ignored = frozenset(n for n in names if n.endswith(NON_MODEL_SUFFIXES))
    tensors: dict[str, np.ndarray] = {}
    for name in names:
        if name in ignored:
            continue
        try:
            tensors[name] = np.asarray(reader.get_tensor(name))  # dtype checked when ported
        except (*_READ_ERRORS, tf.errors.OpError) as exc:
            raise CheckpointError(
                f"cannot read variable {name} from {path} (truncated or corrupt data file?): "
                f"{one_line(exc)}"
            ) from exc
    top_keys = frozenset(n for n in tensors if n.startswith(f"{scope}/logits/"))
    bias = tensors.get(f"{scope}/logits/biases")

    def locate(layer: str, variable: str) -> tuple[str, Hook | None]:
        return slim_key(scope, layer, variable), logits_hook(layer, variable)

    return SourceWeights(
        family=SLIM_V2 if scope.startswith("resnet_v2") else SLIM,
        depth=detected, num_classes=0 if bias is None else int(bias.shape[-1]),
        tensors=tensors, locate=locate, source=str(prefix), ignored=ignored, top_keys=top_keys,
    )


def write(model_weights: dict[str, np.ndarray], prefix: Path) -> None:
    """Write ``{slim name: array}`` as a V2 checkpoint, the format ``tf.train.Saver`` writes.

    Used for stand-in checkpoints (offline demo, tests); SaveV2 is the op the
    Saver itself runs, so the files are indistinguishable from official ones.
    """
    import tensorflow as tf

    names = sorted(model_weights)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tf.raw_ops.SaveV2(
        prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
        tensors=[tf.constant(model_weights[n]) for n in names],
    )
