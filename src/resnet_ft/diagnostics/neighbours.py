"""Neighbour search: Hamming distances of hashes, cosines of features.

Hashes: exact, every variant against every whole-image hash (faiss' binary
flat index). Features are centred (the data set's mean removed: raw pooled
ResNet features all point roughly the same way) and L2-normalised, so a
float32 matrix product gives cosines; an image's mirrored view counts as the
image (mirror copies). Up to ``EXACT_UP_TO`` images the feature search is
exact, in row blocks (memory: one block of the similarity matrix). Measured
(docs/commands/doctor.md, ``bench_doctor``): exact was faster than an HNSW graph at 10,000 and
20,000 images; at 100,000 the graph was about 4x faster (12 min against
~50, 2 shared cores) but missed 2 of 50 planted near copies. Recall comes
first, so exact search covers 100,000 images, and the graph
(:mod:`~resnet_ft.diagnostics.ann`) only larger sets, where the quadratic
products become many hours.
"""

from __future__ import annotations

import numpy as np

from resnet_ft.diagnostics.ann import approximate_neighbours
from resnet_ft.diagnostics.pairs import FeatureNeighbours, Pairs, unique_pairs

#: Elements of one block of the distance matrix (bounds the memory of a search).
BLOCK_ELEMENTS = 1 << 23
#: Images up to which the feature search is exact (measured, docs/commands/doctor.md).
EXACT_UP_TO = 100_000


def hash_pairs(hashes: np.ndarray, max_distance: int) -> Pairs:
    """Pairs whose whole-image hash is within ``max_distance`` bits of a variant of the other.

    ``hashes`` is (N, variants) uint64 with variant 0 the whole image. The
    distance of a pair is the smallest over both directions and all variants.
    Exact: every variant of every image against every whole-image hash, by
    faiss' binary flat index (popcount, multi-threaded; 7.7x numpy's blocked
    XOR + popcount at 100,000 images, docs/commands/doctor.md).
    """
    import faiss

    count, variants = hashes.shape
    index = faiss.IndexBinaryFlat(64)
    index.add(_codes(hashes[:, 0]))
    limits, distance, found = index.range_search(_codes(hashes.reshape(-1)), max_distance + 1)
    query = np.repeat(np.arange(count * variants) // variants, np.diff(limits).astype(np.int64))
    keep = query != found  # not itself
    return unique_pairs(query[keep], found[keep], distance[keep].astype(np.uint8), largest=False)


def _codes(values: np.ndarray) -> np.ndarray:
    """64-bit hashes as the (N, 8) bytes faiss' binary indexes take."""
    return np.ascontiguousarray(values, np.uint64).view(np.uint8).reshape(-1, 8)


def normalise(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Centred, unit-length float32 rows."""
    centred = np.asarray(features, np.float32) - mean
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.maximum(norms, 1e-12)


def feature_neighbours(views: np.ndarray, labels: np.ndarray, classes: int,
                       threshold: float, k: int, exact_up_to: int | None = None
                       ) -> FeatureNeighbours:
    """Near pairs and per-class affinities from normalised features ``views`` (N, V, C):
    exact up to ``exact_up_to`` images (default ``EXACT_UP_TO``), approximate above."""
    if len(views) > (EXACT_UP_TO if exact_up_to is None else exact_up_to):
        return approximate_neighbours(views, labels, classes, threshold, k)
    return exact_neighbours(views, labels, classes, threshold, k)


def exact_neighbours(views: np.ndarray, labels: np.ndarray, classes: int,
                     threshold: float, k: int) -> FeatureNeighbours:
    """:func:`feature_neighbours` by blocked float32 matrix products (all pairs)."""
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
