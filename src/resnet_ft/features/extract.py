"""Running a compiled backbone over image files: outputs per image and view, into the store.

The loop every extraction shares: decode and resize in tf.data (in parallel,
order kept), batch, run the engine's function (under a distribution strategy
each replica computes a slice of every batch), and commit the results to the
store shard by shard, or keep them in memory. Which function runs — which
backbone, engine and precision — is the featurizer's business
(:mod:`resnet_ft.features.featurizer`).

Outputs that are not finite (NaN or infinity, or beyond float16's range where
the store keeps float16) are never stored: the table lists those files in
``nonfinite`` and the featurizer refuses to go on with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

EXTRACT_BATCH = 32
#: Why a file's outputs were not kept.
NOT_FINITE = "NaN or infinite outputs"
BEYOND_FLOAT16 = "outputs beyond float16's range (|x| > 65504), the store's type here"


@dataclass
class _Job:
    """One extraction: the function to run and how files are read and batched."""

    run: Any
    preprocessing: Preprocessing
    console: Console
    strategy: Any
    batch_size: int

    def batches(self, paths: list[Path], todo: list[int],
                description: str) -> Iterator[tuple[list[int], Any, dict[int, str]]]:
        """``(file indices, outputs (n, views, ...), {index: decode error})`` per batch."""
        if hasattr(self.run, "resolve"):  # compiled now that something must be computed
            self.run = self.run.resolve()
        dataset = image_dataset([str(paths[i]) for i in todo], self.preprocessing)
        position = 0
        with track(self.console, description, len(todo)) as progress:
            for pixels, flags in dataset.batch(self.batch_size).prefetch(2):
                batch = todo[position : position + len(flags)]
                position += len(flags)
                reasons = flags.numpy()
                ok = np.array([not e for e in reasons])
                errors = {i: e.decode("utf-8") for i, e in zip(batch, reasons, strict=True) if e}
                good = [i for i, flag in zip(batch, ok, strict=True) if flag]
                values = _run(self.run, pixels, ok, self.strategy) if good else None
                yield good, values, errors
                progress.advance(len(batch))


def extract(
    paths: list[Path],
    backbone: keras.Model | Function,
    preprocessing: Preprocessing,
    *,
    views: int,
    cache: FeatureCache | None,
    console: Console,
    description: str = "extracting features",
    strategy: Any = None,
    batch_size: int = EXTRACT_BATCH,
    pool: bool = True,
    replicas: bool = True,
) -> FeatureTable:
    """Outputs of every file and view, from the store where possible.

    ``backbone`` is a compiled function (pixels -> outputs per view), or a
    Keras model to compile here. With a store, missing entries are computed and
    committed shard by shard (a killed run keeps every completed shard), and
    the table returned reads its rows from the store. ``pool=False`` keeps the
    spatial axes (the frozen stages' output for phase 2). ``replicas=False``: the
    function uses every device itself (no tf.distribute replicas; workers still share).
    """
    run = backbone
    if hasattr(backbone, "layers"):  # a Keras model: compile it
        run = (pooled_features(backbone, views) if pool
               else view_outputs(backbone, views, pool=False))
    job = _Job(run, preprocessing, console, strategy if replicas else None, batch_size)
    if cache is None:
        return _in_memory(paths, job, description)
    prefixes = cache.keys(paths)
    todo = cache.table(prefixes, views)[1]
    nonfinite: dict[int, str] = {}
    share = worker_share(strategy)
    if share is None:
        extracted = _store(paths, todo, prefixes, cache, job, description, nonfinite)
    else:  # each worker its share; then every worker reads the others' from the shared store
        index, count = share
        job.strategy = None
        extracted = _store(paths, [i for i in todo if i % count == index], prefixes, cache,
                           job, f"{description} (worker {index + 1} of {count})", nonfinite)
        barrier(strategy)
        cache.reload()
        rest = [i for i in cache.table(prefixes, views)[1] if i not in nonfinite]
        extracted += _store(paths, rest, prefixes, cache, job,
                            f"{description} (not in the shared store)", nonfinite)
    table = cache.table(prefixes, views)[0]
    table.extracted, table.nonfinite = extracted, nonfinite
    return table


def _store(paths: list[Path], todo: list[int], prefixes: np.ndarray, cache: FeatureCache,
           job: _Job, description: str, nonfinite: dict[int, str]) -> int:
    """Compute the ``todo`` files' outputs into the store; the number of images computed."""
    extracted = 0
    if not todo:
        return extracted
    with cache.writer() as writer:
        for batch, values, errors in job.batches(paths, todo, description):
            for index, reason in errors.items():
                writer.put_error(prefixes[index], reason)
            if batch:
                kept = _finite(batch, values, cache.dtype, nonfinite)
                if kept.any():
                    writer.put(prefixes[np.asarray(batch)[kept]], values[kept])
                extracted += len(batch)
    return extracted


def _in_memory(paths: list[Path], job: _Job, description: str) -> FeatureTable:
    """Every file's outputs in one array (no store: runs whose backbone may change)."""
    chunks: dict[int, np.ndarray] = {}
    table = FeatureTable(None)
    for batch, values, errors in job.batches(paths, list(range(len(paths))), description):
        table.errors.update(errors)
        if batch:
            kept = _finite(batch, values, np.dtype(np.float32), table.nonfinite)
            chunks.update((i, v) for i, v, ok in zip(batch, values, kept, strict=True) if ok)
        table.extracted += len(batch)
    shape = next(iter(chunks.values())).shape if chunks else (0, 0)
    table.values = np.zeros((len(paths), *shape), np.float32)
    for index, value in chunks.items():
        table.values[index] = value
    return table


def _finite(batch: list[int], values: np.ndarray, dtype: np.dtype,
            nonfinite: dict[int, str]) -> np.ndarray:
    """Which rows of ``values`` stay finite as ``dtype``; the others go into ``nonfinite``."""
    rows = values.reshape(len(values), -1)
    finite = np.isfinite(rows).all(axis=1)
    with np.errstate(over="ignore"):  # an overflow is what this looks for
        storable = finite & np.isfinite(rows.astype(dtype)).all(axis=1)
    for position in np.flatnonzero(~storable):
        nonfinite[batch[position]] = NOT_FINITE if not finite[position] else BEYOND_FLOAT16
    return storable


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


def _run(run: Any, pixels: Any, ok: np.ndarray, strategy: Any) -> np.ndarray:
    """The batch's decodable images through the backbone (sharded across replicas)."""
    selected = pixels.numpy() if ok.all() else pixels.numpy()[ok]
    return run_sharded(strategy, run, selected)
