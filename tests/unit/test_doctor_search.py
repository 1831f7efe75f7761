"""doctor's approximate feature search (large data sets) against a dense computation."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.diagnostics.neighbours import feature_neighbours, normalise


def _clustered(count=800, dims=64, seed=0):
    """Images around 4 class centres, their mirrored views close to them; planted copies:
    near copies (cosine ~0.99) and mirror copies (a copy's plain view is its source's mirror)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    centres = rng.normal(size=(4, dims)) * 0.6
    plain = centres[labels] + rng.normal(size=(count, dims))
    views = np.stack([plain, plain + 0.3 * rng.normal(size=(count, dims))], axis=1)
    near = [(3, 500), (10, 650), (42, 777)]
    for source, copy in near:
        views[copy] = views[source] + 0.08 * rng.normal(size=(2, dims))
    mirror = (120, 321)
    views[mirror[1]] = views[mirror[0], ::-1]
    views[700] = 5 * rng.normal(size=(2, dims))  # far from every class
    return normalise(views, views[:, 0].mean(0)), labels, {*near, mirror}


def _dense(views, labels, classes, k):
    sims = np.maximum(views[:, 0] @ views[:, 0].T, views[:, 0] @ views[:, 1].T)
    np.fill_diagonal(sims, -np.inf)
    affinity = np.array([[np.sort(sims[i, labels == c])[-k:].mean() for c in range(classes)]
                         for i in range(len(views))])
    return sims, affinity


def test_approximate_search_finds_every_near_copy_and_no_other_pair():
    views, labels, planted = _clustered()
    found = feature_neighbours(views, labels, 4, threshold=0.97, k=5, exact_up_to=0)
    sims, _ = _dense(views, labels, 4, 5)
    close = {(a, b) for a, b in zip(*np.nonzero(np.maximum(sims, sims.T) >= 0.97), strict=True)
             if a < b}
    assert close == planted
    assert set(found.pairs.as_dict()) == planted
    for (a, b), cosine in found.pairs.as_dict().items():
        assert cosine == pytest.approx(max(sims[a, b], sims[b, a]), rel=1e-6)


def test_approximate_affinities_are_mostly_exact():
    views, labels, _ = _clustered()
    found = feature_neighbours(views, labels, 4, threshold=0.97, k=5, exact_up_to=0)
    _, affinity = _dense(views, labels, 4, 5)
    best, true_best = found.affinity.max(1), affinity.max(1)
    assert np.mean(np.abs(best - true_best) < 1e-5) >= 0.95
    assert np.argmin(best) == np.argmin(true_best) == 700  # the outlier stays the outlier
