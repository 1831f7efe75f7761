"""Running the frozen backbone over image files: pooled features per image and view.

The backbone is compiled once per model and view count (tracing a 300-layer
graph costs seconds), both views of a batch go through it as one batch, and
under a distribution strategy each replica computes a slice of every batch.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.features.store import FeatureCache, FeatureTable
from resnet_ft.models.architectures import FEATURE_CHANNELS
from resnet_ft.util.progress import track

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

EXTRACT_BATCH = 32


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pooled_features(backbone: keras.Model, views: int):
    """A compiled function: pixels (B, h, w, 3) -> pooled features (B, views, C).

    Compiled once per backbone and view count: tracing and optimising a
    300-layer graph costs seconds.
    """
    compiled = _COMPILED.setdefault(backbone, {})
    if views not in compiled:
        compiled[views] = view_outputs(backbone, views, pool=True)
    return compiled[views]


def view_outputs(model: keras.Model, views: int, *, pool: bool):
    """A compiled function: pixels (B, h, w, 3) -> ``model`` outputs per view (B, views, ...).

    View 1 is the horizontal mirror; both views go through the model as one
    batch, which is faster than two calls. ``pool`` averages the spatial axes.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(pixels: tf.Tensor) -> tf.Tensor:
        batch = pixels if views == 1 else tf.concat([pixels, tf.reverse(pixels, [2])], 0)
        result = model(batch, training=False)
        if pool:
            result = tf.reduce_mean(result, axis=[1, 2])
        return tf.stack(tf.split(result, views), axis=1)

    return run


def extract(
    paths: list[Path],
    backbone: keras.Model,
    preprocessing: Preprocessing,
    *,
    views: int,
    cache: FeatureCache | None,
    console: Console,
    description: str = "extracting features",
    strategy=None,
    batch_size: int = EXTRACT_BATCH,
) -> FeatureTable:
    """Pooled features of every file and view, from the cache where possible."""
    table = FeatureTable(np.zeros((len(paths), views, FEATURE_CHANNELS), np.float32))
    todo = (_read_cached(paths, views, cache, table) if cache is not None
            else list(range(len(paths))))
    if not todo:
        return table
    run = pooled_features(backbone, views)
    dataset = image_dataset([str(paths[i]) for i in todo], preprocessing)
    dataset = dataset.batch(batch_size).prefetch(2)
    position = 0
    with track(console, description, len(todo)) as progress:
        for pixels, errors in dataset:
            batch = todo[position : position + len(errors)]
            position += len(errors)
            ok = np.array([not e for e in errors.numpy()])
            for index, error in zip(batch, errors.numpy(), strict=True):
                if error:
                    table.errors[index] = error.decode("utf-8")
                    if cache is not None:
                        cache.put_error(paths[index], table.errors[index])
            if ok.any():
                good = [i for i, flag in zip(batch, ok, strict=True) if flag]
                feats = _run(run, pixels, ok, strategy)
                table.values[good] = feats
                table.extracted += len(good)
                if cache is not None:
                    for index, feat in zip(good, feats, strict=True):
                        for view in range(views):
                            cache.put(paths[index], view, feat[view])
            progress.advance(len(batch))
    return table


def _read_cached(paths: list[Path], views: int, cache: FeatureCache,
                 table: FeatureTable) -> list[int]:
    """Fill ``table`` from the cache (features and remembered failures); return the misses."""
    todo: list[int] = []
    for index, path in enumerate(paths):
        reason = cache.get_error(path)
        if reason is not None:
            table.errors[index] = reason
            continue
        cached = [cache.get(path, view) for view in range(views)]
        if any(c is None for c in cached):
            todo.append(index)
        else:
            table.values[index] = np.stack(cached)
    return todo


def check_decodable(paths: list[Path], spec: Preprocessing, console: Console) -> dict[int, str]:
    """Decode every file once (in parallel) and return ``{index: reason}`` for the bad ones.

    The uncached path needs this up front: it must know its training set
    before the first epoch, and it has no cache to remember failures in.
    """
    errors: dict[int, str] = {}
    dataset = image_dataset([str(p) for p in paths], spec).map(lambda _, error: error)
    with track(console, "checking images", len(paths)) as progress:
        for index, error in enumerate(dataset.batch(64).unbatch().as_numpy_iterator()):
            if error:
                errors[index] = error.decode("utf-8")
            progress.advance(1)
    return errors


def _run(run, pixels: tf.Tensor, ok: np.ndarray, strategy) -> np.ndarray:
    """The batch's decodable images through the backbone (sharded across replicas)."""
    from resnet_ft.training.distribute import run_sharded

    selected = pixels.numpy() if ok.all() else pixels.numpy()[ok]
    return run_sharded(strategy, run, selected)
