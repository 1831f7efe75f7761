"""Figure 9: the feature store at a million images (simulated), and one head epoch from it.

This machine cannot decode a million photos in a benchmark, so random pooled
features stand in for the backbone's: 1,000,000 images x 2 views x 2048
channels go through the store's own API (``file_keys``, ``FeatureCache.writer``)
with ImageNet-like file identities, stored as ``train`` stores a bfloat16 run's
features (float16). Then, in the same process: the number of files, the time
to look up every entry in a fresh store object (what a rerun does), read
throughput (every training row once, in epoch order), and one epoch of the
1024-unit head through the product's train step and ``ArraySource``, against
the same number of steps on a batch already in RAM (the arithmetic alone).
Peak anonymous memory (RssAnon, sampled every 20 ms) covers all of it.

Targets: files <= N/1000 + 10; lookup <= 60 s; peak RssAnon <= 4 GB; the epoch
bounded by arithmetic (ratio epoch / arithmetic close to 1).

    python benchmarks/bench_store.py [--images 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save

CLASSES, CHANNELS, VIEWS, BATCH, CHUNK = 1000, 2048, 2, 256, 4096


class PeakAnon:
    """The largest RssAnon of this process seen by a sampling thread."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.now())


def identities(count: int) -> list[list[object]]:
    """ImageNet-like (path, size, mtime_ns) triples, as ``file_identity`` gives them."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(20_000, 400_000, count)
    return [[f"/data/imagenet/train/n{i % CLASSES:08d}/n{i % CLASSES:08d}_{i}.JPEG",
             int(sizes[i]), 1_600_000_000_000_000_000 + i * 1_000_003] for i in range(count)]


def write(cache, ids: list[list[object]]) -> tuple[float, int]:
    """Put every image's two views through the writer; seconds spent in the store, bytes."""
    from resnet_ft.features.store import file_keys

    rng, spent, written = np.random.default_rng(1), 0.0, 0
    with cache.writer() as writer:
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            values = rng.random((len(part), VIEWS, CHANNELS), np.float32) * 4
            began = time.perf_counter()
            writer.put(file_keys(part), values)
            spent += time.perf_counter() - began
            written += values.size * cache.dtype.itemsize
        began = time.perf_counter()
    return spent + time.perf_counter() - began, written


def epoch(rows, labels: np.ndarray) -> dict[str, float]:
    """One head epoch from the store vs the same steps' arithmetic on a batch in RAM."""
    import keras
    import tensorflow as tf

    from resnet_ft.config import TrainConfig
    from resnet_ft.models.head import build_head
    from resnet_ft.training.sources import ArraySource
    from resnet_ft.training.step import class_weights, make_optimizer, train_step

    keras.utils.set_random_seed(0)
    head = build_head(CLASSES, units=1024, dropout=0.0)
    step = train_step(head, make_optimizer(TrainConfig(), 1e-3), class_weights(labels, CLASSES,
                      "none"), 0.0, tf.distribute.get_strategy())
    rng = np.random.default_rng(2)
    order, views = rng.permutation(len(labels)), rng.integers(0, VIEWS, len(labels))
    source = ArraySource(rows, rows[:0])
    x, y = source.train[order[:BATCH], views[:BATCH]], labels[order[:BATCH]]
    step(x, y)  # trace once, outside the timings
    began = time.perf_counter()
    read = sum(len(part) for part in source.batches(order, views, BATCH))
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    for start, inputs in zip(range(0, len(order), BATCH),
                             source.batches(order, views, BATCH), strict=True):
        step(inputs, labels[order[start : start + BATCH]])
    epoch_s = time.perf_counter() - began
    steps = min(300, len(order) // BATCH)
    began = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    arithmetic_s = (time.perf_counter() - began) / steps * (len(order) / BATCH)
    return {"read_rows": read, "read_s": read_s, "epoch_s": epoch_s,
            "arithmetic_s": arithmetic_s, "ratio": epoch_s / arithmetic_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_const", const=20_000, dest="images")
    args = parser.parse_args()
    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.features.store import FeatureCache, file_keys

    peak = PeakAnon()
    ids = identities(args.images)
    labels = np.arange(args.images) % CLASSES
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        store = (Path(tmp), "e" * 64, Preprocessing(224))
        write_s, written = write(FeatureCache(*store, precision="bfloat16"), ids)
        files = sum(1 for p in Path(tmp).rglob("*") if p.is_file())
        began = time.perf_counter()
        table, missing = FeatureCache(*store, precision="bfloat16").table(file_keys(ids), VIEWS)
        lookup_s = time.perf_counter() - began
        assert not missing and not table.errors
        figures = epoch(table.values, labels)
    save("store", {"machine": machine(), "images": args.images, "views": VIEWS,
                   "files": files, "files_target": args.images // 1000 + 10,
                   "write_s": write_s, "write_mb_per_s": written / write_s / 1e6,
                   "lookup_s": lookup_s, "read_mb_per_s": figures["read_rows"] * CHANNELS * 2
                   / figures["read_s"] / 1e6, **figures, "peak_rss_anon_gb": peak.stop() / 1e9})


if __name__ == "__main__":
    main()
