"""Weak slices: regions of the feature space where the out-of-fold heads are much worse.

The images' pooled features (centred, normalised) are clustered by k-means
(faiss, seeded) with ``k = n // SLICE_SIZE`` clusters, at least 2 and at
most MAX_SLICES: slices of about SLICE_SIZE images, large enough for their
accuracy to mean something. A slice is weak when its out-of-fold accuracy is
at least MARGIN below the overall accuracy *and* that many mistakes are
unlikely by chance: the one-sided binomial probability of so few correct
images, at the overall accuracy, is below ALPHA / k (Bonferroni over the k
slices tested). Its representatives are the images closest to its centroid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Images per slice the number of clusters aims at; bounds on the number of clusters.
SLICE_SIZE, MAX_SLICES = 30, 64
#: Accuracy drop and family-wise significance that make a slice weak.
MARGIN, ALPHA = 0.1, 0.05
#: Representative images reported per slice.
REPRESENTATIVES = 3


@dataclass
class Slice:
    """One weak slice: positions (into the given rows), accuracy, chance, representatives."""

    members: np.ndarray
    accuracy: float
    overall: float
    p_value: float
    clusters: int
    representatives: list[int]


def slice_count(images: int) -> int:
    """k of the k-means: about SLICE_SIZE images per slice, 2 to MAX_SLICES."""
    return int(min(max(images // SLICE_SIZE, 2), MAX_SLICES))


def binomial_tail(correct: int, total: int, rate: float) -> float:
    """P(X <= correct) for X ~ Binomial(total, rate), summed in log space (no overflow)."""
    if rate >= 1.0:
        return 0.0 if correct < total else 1.0
    if rate <= 0.0:
        return 1.0
    terms = [math.lgamma(total + 1) - math.lgamma(i + 1) - math.lgamma(total - i + 1)
             + i * math.log(rate) + (total - i) * math.log1p(-rate) for i in range(correct + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def is_weak(accuracy: float, chance: float, overall: float, slices: int) -> bool:
    """At least MARGIN below the overall accuracy, and ``chance`` below ALPHA / ``slices``."""
    return accuracy <= overall - MARGIN and chance < ALPHA / slices


def weak_slices(views: np.ndarray, correct: np.ndarray, seed: int) -> list[Slice]:
    """Weak slices of normalised features ``views`` (n, d) given which rows are right."""
    import faiss

    count = slice_count(len(views))
    if len(views) < 2 * count:
        return []
    data = np.ascontiguousarray(views, np.float32)
    kmeans = faiss.Kmeans(data.shape[1], count, niter=25, seed=seed, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(data)
    distance, assigned = kmeans.index.search(data, 1)
    overall = float(correct.mean())
    found = []
    for cluster in range(count):
        members = np.flatnonzero(assigned[:, 0] == cluster)
        if not len(members):
            continue
        right = int(correct[members].sum())
        accuracy = right / len(members)
        chance = binomial_tail(right, len(members), overall)
        if is_weak(accuracy, chance, overall, count):
            nearest = members[np.argsort(distance[members, 0], kind="stable")]
            found.append(Slice(members, accuracy, overall, chance, count,
                               [int(i) for i in nearest[:REPRESENTATIVES]]))
    return sorted(found, key=lambda s: s.accuracy - s.overall)
