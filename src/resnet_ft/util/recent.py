"""The last few expensive things a process made, kept by key: one bounded LRU map.

Loaded models (:class:`~resnet_ft.models.files.Recent`) and compiled feature
extractors (:mod:`resnet_ft.features.engines.tensorflow`) each hold a backbone's
weights, 100-200 MB: a process keeps only the last few it used, and a value is
made again once it has gone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LastUsed(Generic[K, V]):
    """The values of the ``size`` keys used last; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for ``key``, made by ``make()`` (and kept) when there is none."""
        if key not in self.values:
            self.values[key] = make()
            while len(self.values) > self.size:
                self.values.popitem(last=False)
        self.values.move_to_end(key)
        return self.values[key]
