"""Input sources: what a phase's model is fed, batch by batch, in the epoch's seeded order.

A source yields the phase model's inputs: pooled features (phase 1), the
frozen stages' output (phase 2), or pixels (online). ``views[i]`` picks the
view of sample i (1 = mirrored), so cached and online training see the same
flips for the same seed. When distilling, :class:`WithTargets` adds the
teacher's probabilities for the same samples and views to every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing, image_dataset


class ArraySource:
    """Inputs precomputed per sample and view: ``train[i, view]`` (in memory or memory-mapped)."""

    def __init__(self, train: np.ndarray, val: np.ndarray) -> None:
        self.train, self.val = train, val

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int) -> Iterator[Any]:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield np.asarray(self.train[idx, views[idx]], np.float32)

    def validation_batches(self, batch_size: int) -> Iterator[Any]:
        for start in range(0, len(self.val), batch_size):
            yield np.asarray(self.val[start : start + batch_size, 0], np.float32)


class OnlineSource:
    """Inputs computed from the image files every epoch: decode, augment, ``transform``."""

    def __init__(self, preprocessing: Preprocessing, train: list[Path], val: list[Path],
                 transform: Callable[[Any], Any], augment: Any = None) -> None:
        self.preprocessing, self.train, self.val = preprocessing, train, val
        self.transform, self.augment = transform, augment

    def _pixels(self, paths: list[Path], flips: np.ndarray, batch_size: int, augment):
        import tensorflow as tf

        images = image_dataset([str(p) for p in paths], self.preprocessing)
        flags = tf.data.Dataset.from_tensor_slices(flips.astype(bool))
        dataset = tf.data.Dataset.zip(images, flags).map(
            lambda item, flip: tf.cond(flip, lambda: tf.reverse(item[0], [1]), lambda: item[0]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        ).batch(batch_size)
        if augment is not None:
            dataset = dataset.map(lambda x: augment(x, training=True),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int) -> Iterator[Any]:
        paths = [self.train[i] for i in order]
        for pixels in self._pixels(paths, views[order], batch_size, self.augment):
            yield self.transform(pixels)

    def validation_batches(self, batch_size: int) -> Iterator[Any]:
        flips = np.zeros(len(self.val), bool)
        for pixels in self._pixels(self.val, flips, batch_size, None):
            yield self.transform(pixels)


class WithTargets:
    """A source whose training batches are ``(inputs, teacher probabilities)``.

    ``targets[i, view]`` are the teacher's probabilities for sample i seen in
    that view, computed once (:mod:`resnet_ft.training.distill`); any inner
    source works, because both follow the same order and views.
    """

    def __init__(self, inner: Any, targets: np.ndarray) -> None:
        self.inner, self.targets = inner, targets

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int) -> Iterator[Any]:
        start = 0
        for x in self.inner.batches(order, views, batch_size):
            idx = order[start : start + len(x)]
            start += len(x)
            yield x, self.targets[idx, views[idx]]

    def validation_batches(self, batch_size: int) -> Iterator[Any]:
        return self.inner.validation_batches(batch_size)
