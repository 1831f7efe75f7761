"""Spreading work over tf.distribute replicas and cluster workers.

Feature extraction and training both split a batch into one contiguous slice
per replica and gather the results back in order; in a cluster, extraction
also divides the files between workers. Strategy-agnostic helpers, so the
feature layer can use them without depending on training.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


def worker_index() -> int:
    """This process's worker index in ``TF_CONFIG`` (0 outside a cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief":
        return 0
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return int(task.get("index", 0)) + (1 if has_chief else 0)


def worker_share(strategy: tf.distribute.Strategy | None) -> tuple[int, int] | None:
    """``(this worker's index, number of workers)`` in a cluster of several, else ``None``.

    Extraction divides the files by it: each worker decodes and runs the
    backbone on its own share and reads the others' from the shared store.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster", {})
    count = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return (worker_index(), count) if count > 1 else None


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Return once every worker has reached this point (an all-reduce of one number)."""
    import tensorflow as tf

    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def sharded(strategy: tf.distribute.Strategy, array: np.ndarray):
    """A distributed value: replica r gets the r-th contiguous slice of the global batch."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return array
    parts = np.array_split(array, replicas)
    return strategy.experimental_distribute_values_from_function(
        lambda context: parts[context.replica_id_in_sync_group])


def run_sharded(strategy: tf.distribute.Strategy | None, function, array: np.ndarray) -> np.ndarray:
    """``function`` on each replica's slice; the results gathered back in order.

    ``None`` (no strategy) and one-replica strategies just call ``function``, which
    may return a tensor or (an engine of its own: OpenVINO) an array.
    """
    import tensorflow as tf

    if strategy is None or strategy.num_replicas_in_sync == 1:
        result = function(tf.convert_to_tensor(array))
        return result.numpy() if hasattr(result, "numpy") else np.asarray(result)
    result = strategy.run(function, args=(sharded(strategy, array),))
    return strategy.gather(result, axis=0).numpy()
