"""A child process that fills a feature store slowly, for tests that kill it mid-way.

``python store_worker.py DATA CACHE SHARD_BYTES DELAY`` extracts every image
under DATA with :func:`tiny_backbone`, 4 images per batch, sleeping DELAY
seconds per batch, into shards of SHARD_BYTES.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np
from rich.console import Console

import resnet_ft.features.extract as extract_module
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.store import FeatureCache

SIZE = 32


def tiny_backbone() -> keras.Model:
    """A seeded one-convolution 'backbone' (8 channels): the same weights in every process."""
    init = keras.initializers.RandomNormal(seed=1)
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)),
                             keras.layers.Conv2D(8, 3, kernel_initializer=init)])


def store(cache_dir: Path, shard_bytes: int = 32 << 20, **options) -> FeatureCache:
    return FeatureCache(cache_dir, "f" * 64, Preprocessing(SIZE), shard_bytes=shard_bytes,
                        **options)


def images(data: Path) -> list[Path]:
    return sorted(data.rglob("*.jpg"))


def main(data: str, cache_dir: str, shard_bytes: str, delay: str) -> None:
    real = extract_module._run

    def slow(*args):
        time.sleep(float(delay))
        return real(*args)

    extract_module._run = slow
    extract_module.extract(images(Path(data)), tiny_backbone(), Preprocessing(SIZE), views=2,
                           cache=store(Path(cache_dir), int(shard_bytes)),
                           console=Console(quiet=True), batch_size=4)
    print("done", np.__version__, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
