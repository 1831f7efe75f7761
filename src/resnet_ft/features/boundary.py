"""The frozen stages' output (the *boundary* tensor), cached for phase 2 of fine-tuning.

``--trainable blockK`` trains stage K and above; the stages below never
change, so their output is computed once per image and view and kept as one
float16 ``.npy`` file, memory-mapped while phase 2 runs only the unfrozen
stages. The file is keyed like pooled features (backbone, files, preprocessing)
plus the freeze mode, and written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.features.identity import file_identity, key_digest
from resnet_ft.util.progress import track

if TYPE_CHECKING:
    import keras

class BoundaryCache:
    """The frozen stages' output for a list of files and views, as one float16 .npy memmap."""

    def __init__(self, root: Path, backbone_id: str, spec: Preprocessing, mode: str) -> None:
        self.root = Path(root) / "boundary"
        self.identity = [backbone_id, json.dumps(spec.to_dict(), sort_keys=True), mode]

    def path(self, files: list[Path], views: int) -> Path:
        key = key_digest(self.identity, [file_identity(p) for p in files], views)
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
    from resnet_ft.features.extract import view_outputs
    from resnet_ft.training.distribute import run_sharded

    run = view_outputs(lower, views, pool=False)
    position = 0
    with track(console, description, len(files)) as progress:
        for pixels, _ in image_dataset([str(p) for p in files], spec).batch(16).prefetch(2):
            values = run_sharded(strategy, run, pixels.numpy())
            out[position : position + len(values)] = values.astype(np.float16)
            position += len(values)
            progress.advance(len(values))
