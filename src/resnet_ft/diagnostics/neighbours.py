"""Exact neighbour search in blocks: Hamming distances of hashes, cosines of features.

Both are all-pairs searches done in row blocks, so memory stays at one block
of the distance matrix whatever the data set's size. Features are centred
(the data set's mean removed: raw pooled ResNet features all point roughly
the same way) and L2-normalised, so a float32 matrix product gives cosines;
an image's mirrored view counts as the image (mirror copies). Hashes are
compared with XOR + popcount on packed 64-bit words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Elements of one block of the distance matrix (bounds the memory of a search).
BLOCK_ELEMENTS = 1 << 23


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


def hash_pairs(hashes: np.ndarray, max_distance: int) -> Pairs:
    """Pairs whose whole-image hash is within ``max_distance`` bits of a variant of the other.

    ``hashes`` is (N, variants) uint64 with variant 0 the whole image. The
    distance of a pair is the smallest over both directions and all variants.
    """
    count, variants = hashes.shape
    whole = hashes[:, 0]
    rows = max(1, BLOCK_ELEMENTS // max(count, 1))
    found_i, found_j, found_d = [], [], []
    for start in range(0, count, rows):
        block = hashes[start : start + rows]
        best = np.full((len(block), count), 255, np.uint8)
        for variant in range(variants):
            np.minimum(best, np.bitwise_count(block[:, variant, None] ^ whole[None, :]), out=best)
        best[np.arange(len(block)), np.arange(start, start + len(block))] = 255  # not itself
        a, b = np.nonzero(best <= max_distance)
        found_i.append(a + start)
        found_j.append(b)
        found_d.append(best[a, b])
    if not found_i:
        return Pairs.empty(np.uint8)
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((d, hi, lo))  # per pair, the smaller distance first
    lo, hi, d = lo[order], hi[order], d[order]
    first = np.ones(len(lo), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return Pairs(lo[first], hi[first], d[first])


def normalise(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Centred, unit-length float32 rows."""
    centred = np.asarray(features, np.float32) - mean
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.maximum(norms, 1e-12)


@dataclass
class FeatureNeighbours:
    """What one pass over the feature similarities finds.

    ``pairs``: unordered pairs with cosine >= the threshold (mirror counted).
    ``affinity[i, c]``: mean cosine of image i to its ``k`` most similar
    images of class c (itself excluded; at most one fewer than the class has).
    """

    pairs: Pairs
    affinity: np.ndarray


def feature_neighbours(views: np.ndarray, labels: np.ndarray, classes: int,
                       threshold: float, k: int) -> FeatureNeighbours:
    """Near pairs and per-class affinities from normalised features ``views`` (N, V, C)."""
    count = len(views)
    plain = np.ascontiguousarray(views[:, 0])
    mirrored = np.ascontiguousarray(views[:, 1]) if views.shape[1] > 1 else None
    members = [np.flatnonzero(labels == c) for c in range(classes)]
    affinity = np.full((count, classes), -1.0, np.float32)
    rows = max(1, BLOCK_ELEMENTS // max(count, 1))
    found_i, found_j, found_s = [], [], []
    for start in range(0, count, rows):
        stop = min(start + rows, count)
        sims = plain[start:stop] @ plain.T
        if mirrored is not None:
            np.maximum(sims, plain[start:stop] @ mirrored.T, out=sims)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
        a, b = np.nonzero(sims[:, start:] >= threshold)
        a, b = a + start, b + start
        keep = a < b  # each pair once
        found_i.append(a[keep])
        found_j.append(b[keep])
        found_s.append(sims[a[keep] - start, b[keep]])
        for klass, idx in enumerate(members):
            take = min(k, len(idx) - 1)  # one fewer: the image itself may be a member
            if take >= 1:
                top = np.partition(sims[:, idx], -take, axis=1)[:, -take:]
                affinity[start:stop, klass] = top.mean(1)
    pairs = Pairs(np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)) \
        if found_i else Pairs.empty()
    return FeatureNeighbours(pairs, affinity)
