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
Slicing batches over replicas and files over workers: :mod:`resnet_ft.util.replicas`.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

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
