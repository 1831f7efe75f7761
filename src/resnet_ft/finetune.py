"""Unfreezing the top of the backbone: which layers train, and where the frozen part ends.

``--trainable blockK`` unfreezes stage K and everything above it (``all``
includes the stem). The frozen stages below never change, so their output —
the *boundary* tensor — is computed once per image and view and cached
(float16, memory-mapped), and phase 2 runs only the unfrozen stages. BatchNorm
layers of unfrozen stages stay frozen — inference mode, statistics and
gamma/beta untouched (the Keras transfer-learning rule) — unless ``--train-bn``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from resnet_ft.architectures import stage_of
from resnet_ft.preprocessing import Preprocessing, image_dataset
from resnet_ft.progress import track

if TYPE_CHECKING:
    import keras

#: Index of the first unfrozen stage per mode (stem = 0, blockK = K); head unfreezes none.
FIRST_TRAINABLE = {"all": 0, "block1": 1, "block2": 2, "block3": 3, "block4": 4, "head": 5}
_STAGE_INDEX = {"stem": 0, "block1": 1, "block2": 2, "block3": 3, "block4": 4}
_INPUT_LAYERS = ("pixels", "normalize")  # no weights; they belong to no stage


def _index(layer_name: str) -> int:
    return -1 if layer_name in _INPUT_LAYERS else _STAGE_INDEX.get(stage_of(layer_name), -1)


def set_trainable(backbone: keras.Model, mode: str, *, train_bn: bool = False) -> None:
    """Freeze the stages below ``mode``, unfreeze it and those above.

    BatchNorm layers of unfrozen stages stay frozen unless ``train_bn``: in
    Keras 3 a non-trainable BN layer always runs in inference mode, whatever
    ``training`` says, which is the only reliable way to keep its statistics
    (an outer ``training=True`` overrides a ``training=False`` recorded in a
    functional graph).
    """
    import keras

    first = FIRST_TRAINABLE[mode]
    backbone.trainable = first < 5
    for layer in backbone.layers:
        unfrozen = _index(layer.name) >= first
        if isinstance(layer, keras.layers.BatchNormalization):
            unfrozen = unfrozen and train_bn
        layer.trainable = unfrozen


def split_backbone(backbone: keras.Model, mode: str) -> tuple[keras.Model, keras.Model]:
    """``(lower, upper)``: pixels -> boundary tensor, boundary -> last feature map.

    Both share the backbone's layer objects, so training ``upper`` trains the
    backbone that is saved.
    """
    import keras

    first = FIRST_TRAINABLE[mode]
    boundary = [layer for layer in backbone.layers if _index(layer.name) < first][-1]
    lower = keras.Model(backbone.input, boundary.output, name="frozen_stages")
    upper = keras.Model(boundary.output, backbone.output, name="unfrozen_stages")
    return lower, upper


def phase2_model(upper: keras.Model, head: keras.Model) -> keras.Model:
    """Boundary tensor -> unfrozen stages -> pooling -> head (BN as set by set_trainable)."""
    import keras
    from keras import layers

    inputs = keras.Input(upper.input.shape[1:], name="boundary")
    features = upper(inputs)
    return keras.Model(inputs, head(layers.GlobalAveragePooling2D()(features)), name="phase2")


class BoundaryCache:
    """The frozen stages' output for a list of files and views, as one float16 .npy memmap."""

    def __init__(self, root: Path, backbone_id: str, spec: Preprocessing, mode: str) -> None:
        self.root = Path(root) / "boundary"
        self.identity = [backbone_id, json.dumps(spec.to_dict(), sort_keys=True), mode]

    def path(self, files: list[Path], views: int) -> Path:
        ids = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        key = hashlib.sha256(json.dumps([self.identity, ids, views]).encode()).hexdigest()
        return self.root / f"{key[:32]}.npy"

    def load(self, lower: keras.Model, files: list[Path], views: int, spec: Preprocessing,
             console: Console, description: str, strategy=None) -> np.ndarray:
        """The cached array, computing and writing it (atomically) on a miss."""
        target = self.path(files, views)
        try:
            return np.load(target, mmap_mode="r")
        except (OSError, ValueError):
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        size = spec.image_size
        shape = (len(files), views, *lower.compute_output_shape((1, size, size, 3))[1:])
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        try:
            compute_boundary(lower, files, views, spec, array, console, description, strategy)
            array.flush()
            del array
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return np.load(target, mmap_mode="r")


def compute_boundary(lower, files: list[Path], views: int, spec: Preprocessing, out: np.ndarray,
                     console: Console, description: str, strategy=None) -> None:
    """Fill ``out[i, v]`` with the frozen stages' output of file i (v = 1: mirrored).

    Under a distribution strategy each replica computes a slice of every batch.
    """
    from resnet_ft.distribute import run_sharded
    from resnet_ft.features import view_outputs

    run = view_outputs(lower, views, pool=False)
    position = 0
    with track(console, description, len(files)) as progress:
        for pixels, _ in image_dataset([str(p) for p in files], spec).batch(16).prefetch(2):
            values = run_sharded(strategy, run, pixels.numpy())
            out[position : position + len(values)] = values.astype(np.float16)
            position += len(values)
            progress.advance(len(values))
