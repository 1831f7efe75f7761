"""Scale-out with tf.distribute: one device, all local GPUs, or several machines.

``--strategy``:

* ``auto`` — all local GPUs when there are several (MirroredStrategy), else one device.
* ``one-device`` — the first GPU, or the CPU (TensorFlow's default strategy).
* ``mirrored`` — MirroredStrategy over all local GPUs (or, without GPUs, over the
  logical CPU devices that ``RESNET_FT_CPU_DEVICES=N`` creates — for testing).
* ``multi-worker`` — MultiWorkerMirroredStrategy configured from ``TF_CONFIG``; the
  same command runs on every machine of the cluster.

``--batch-size`` is per replica: the global batch is ``batch_size x replicas``, so
the per-device work is the same whatever the cluster. Every worker reads the
same seeded batches and each replica takes its slice, so all replicas step
together on exactly the global batch; gradients are summed across replicas by
the optimizer, which is why the loss is divided by the *global* batch size.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.errors import InputError

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker")
CPU_DEVICES_ENV = "RESNET_FT_CPU_DEVICES"


def configure_logical_cpus() -> None:
    """Split the CPU into ``$RESNET_FT_CPU_DEVICES`` logical devices (before TF starts)."""
    count = os.environ.get(CPU_DEVICES_ENV)
    if not count:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    # Once the runtime is up the split can no longer change (a second call, or a
    # process that already ran TF ops): keep what is there.
    with contextlib.suppress(RuntimeError):
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(count))])


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``--strategy``."""
    import tensorflow as tf

    if name == "multi-worker":  # first: collectives must be set up before the runtime starts
        if "TF_CONFIG" not in os.environ:
            raise InputError("--strategy multi-worker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    configure_logical_cpus()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    # One device: the default strategy (TF places ops on the first GPU by itself) — it
    # adds nothing to every step, where OneDeviceStrategy costs ~20 % on a small head.
    return tf.distribute.get_strategy()


def worker_index() -> int:
    """This process's worker index in ``TF_CONFIG`` (0 outside a cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief":
        return 0
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return int(task.get("index", 0)) + (1 if has_chief else 0)


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

    ``None`` (no strategy) and one-replica strategies just call ``function``.
    """
    import tensorflow as tf

    if strategy is None or strategy.num_replicas_in_sync == 1:
        return function(tf.convert_to_tensor(array)).numpy()
    result = strategy.run(function, args=(sharded(strategy, array),))
    return strategy.gather(result, axis=0).numpy()
