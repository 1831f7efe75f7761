"""Running a compiled backbone over image files: outputs per image and view, into the store.

The loop every extraction shares: decode and resize in tf.data (in parallel,
order kept), batch, run the engine's function (under a distribution strategy
each replica computes a slice of every batch), and commit the results to the
store shard by shard, or keep them in memory. Which function runs — which
backbone, engine and precision — is the featurizer's business
(:mod:`resnet_ft.features.featurizer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.features.engines import Function
from resnet_ft.features.engines.tensorflow import pooled_features, view_outputs
from resnet_ft.features.store import FeatureCache, FeatureTable
from resnet_ft.util.progress import track
from resnet_ft.util.replicas import barrier, run_sharded, worker_share

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

EXTRACT_BATCH = 32


def extract(
    paths: list[Path],
    backbone: keras.Model | Function,
    preprocessing: Preprocessing,
    *,
    views: int,
    cache: FeatureCache | None,
    console: Console,
    description: str = "extracting features",
    strategy=None,
    batch_size: int = EXTRACT_BATCH,
    pool: bool = True,
) -> FeatureTable:
    """Outputs of every file and view, from the store where possible.

    ``backbone`` is a compiled function (pixels -> outputs per view), or a
    Keras model to compile here. With a store, missing entries are computed and
    committed shard by shard (a killed run keeps every completed shard), and
    the table returned reads its rows from the store. ``pool=False`` keeps the
    spatial axes (the frozen stages' output for phase 2).
    """
    run = backbone
    if hasattr(backbone, "layers"):  # a Keras model: compile it
        run = (pooled_features(backbone, views) if pool
               else view_outputs(backbone, views, pool=False))
    if cache is None:
        return _in_memory(paths, run, preprocessing, console, description, strategy, batch_size)
    prefixes = cache.keys(paths)
    table, todo = cache.table(prefixes, views)
    share = worker_share(strategy)
    if share is None:
        extracted = _store(paths, todo, prefixes, cache, run, preprocessing, console,
                           description, strategy, batch_size)
    else:  # each worker its share; then every worker reads the others' from the shared store
        index, count = share
        extracted = _store(paths, [i for i in todo if i % count == index], prefixes, cache, run,
                           preprocessing, console, f"{description} (worker {index + 1} of "
                           f"{count})", None, batch_size)
        barrier(strategy)
        cache.reload()
        table, rest = cache.table(prefixes, views)
        extracted += _store(paths, rest, prefixes, cache, run, preprocessing, console,
                            f"{description} (not in the shared store)", None, batch_size)
    table = cache.table(prefixes, views)[0]
    table.extracted = extracted
    return table


def _store(paths: list[Path], todo: list[int], prefixes, cache: FeatureCache, run,
           preprocessing: Preprocessing, console: Console, description: str, strategy,
           batch_size: int) -> int:
    """Compute the ``todo`` files' outputs into the store; the number of images computed."""
    extracted = 0
    if not todo:
        return extracted
    with cache.writer() as writer:
        for batch, values, errors in _outputs(paths, todo, run, preprocessing, console,
                                              description, strategy, batch_size):
            for index, reason in errors.items():
                writer.put_error(prefixes[index], reason)
            if batch:
                writer.put(prefixes[batch], values)
                extracted += len(batch)
    return extracted


def _in_memory(paths: list[Path], run, preprocessing: Preprocessing, console: Console,
               description: str, strategy, batch_size: int) -> FeatureTable:
    """Every file's outputs in one array (no store: runs whose backbone may change)."""
    chunks: dict[int, np.ndarray] = {}
    table = FeatureTable(None)
    for batch, values, errors in _outputs(paths, list(range(len(paths))), run, preprocessing,
                                          console, description, strategy, batch_size):
        table.errors.update(errors)
        chunks.update(zip(batch, values, strict=True))
        table.extracted += len(batch)
    shape = next(iter(chunks.values())).shape if chunks else (0, 0)
    table.values = np.zeros((len(paths), *shape), np.float32)
    for index, value in chunks.items():
        table.values[index] = value
    return table


def _outputs(paths: list[Path], todo: list[int], run, preprocessing: Preprocessing,
             console: Console, description: str, strategy, batch_size: int):
    """Yield ``(file indices, outputs (n, views, ...), {index: decode error})`` per batch."""
    if hasattr(run, "resolve"):  # compiled now that something must be computed
        run = run.resolve()
    dataset = image_dataset([str(paths[i]) for i in todo], preprocessing)
    position = 0
    with track(console, description, len(todo)) as progress:
        for pixels, flags in dataset.batch(batch_size).prefetch(2):
            batch = todo[position : position + len(flags)]
            position += len(flags)
            reasons = flags.numpy()
            ok = np.array([not e for e in reasons])
            errors = {i: e.decode("utf-8") for i, e in zip(batch, reasons, strict=True) if e}
            good = [i for i, flag in zip(batch, ok, strict=True) if flag]
            values = _run(run, pixels, ok, strategy) if good else None
            yield good, values, errors
            progress.advance(len(batch))


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
    selected = pixels.numpy() if ok.all() else pixels.numpy()[ok]
    return run_sharded(strategy, run, selected)
