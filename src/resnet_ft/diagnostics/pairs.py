"""What neighbour searches find: unordered pairs with a value, and per-class affinities.

Shared by the exact search (:mod:`~resnet_ft.diagnostics.neighbours`) and the
approximate one (:mod:`~resnet_ft.diagnostics.ann`), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    """Unordered pairs ``i < j`` with a value each (distance or similarity)."""

    i: np.ndarray
    j: np.ndarray
    value: np.ndarray

    @classmethod
    def empty(cls, dtype: type = np.float32) -> Pairs:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype))

    def as_dict(self) -> dict[tuple[int, int], float]:
        return {(int(a), int(b)): float(v) for a, b, v in
                zip(self.i, self.j, self.value, strict=True)}


def unique_pairs(i: np.ndarray, j: np.ndarray, value: np.ndarray, *, largest: bool) -> Pairs:
    """Unordered pairs ``i < j`` from directed hits, each once with its best value."""
    if len(i) == 0:
        return Pairs.empty(value.dtype.type)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((-value if largest else value, hi, lo))  # per pair, the best first
    lo, hi, value = lo[order], hi[order], value[order]
    first = np.ones(len(lo), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return Pairs(lo[first].astype(np.int64), hi[first].astype(np.int64), value[first])


@dataclass
class FeatureNeighbours:
    """What one pass over the feature similarities finds.

    ``pairs``: unordered pairs with cosine >= the threshold (mirror counted).
    ``affinity[i, c]``: mean cosine of image i to its ``k`` most similar
    images of class c (itself excluded; at most one fewer than the class has).
    """

    pairs: Pairs
    affinity: np.ndarray
