"""The reject scorer's whitening, against scikit-learn's Ledoit-Wolf covariance."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.runs.scorer import fit_scorer


def _features(count: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, labels, shrunk covariance)``: 3 classes, correlated dimensions, and the
    covariance scikit-learn's ``ledoit_wolf`` finds for the centred rows."""
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    features = (rng.normal(size=(count, dim)) @ mixing + labels[:, None] * 2.0)
    features = features.astype(np.float32)
    rows = features.astype(np.float64)
    means = np.stack([rows[labels == c].mean(0) for c in range(3)])
    covariance, _ = ledoit_wolf(rows - means[labels], assume_centered=True)
    return features, labels, covariance


@pytest.mark.parametrize(("count", "dim"), [(900, 2048), (400, 300), (400, 97)])
def test_whitening_makes_the_shrunk_covariance_the_identity(count, dim):
    """``W C W^T = I`` at ResNet's 2048 and at sizes whose halves are odd (the triangular
    inverse works by halves), with ``W`` lower-triangular (the inverse Cholesky factor):
    0.4 D training rows or more."""
    features, labels, covariance = _features(count, dim, dim)
    scorer = fit_scorer(features, labels, features[:10], 0.1)
    whiten = scorer.whiten.astype(np.float64)
    assert np.abs(whiten @ covariance @ whiten.T - np.eye(dim)).max() < 1e-4  # float32 W
    assert (np.triu(scorer.whiten, 1) == 0).all()


@pytest.mark.parametrize(("count", "dim"), [(40, 2048), (30, 97)])
def test_few_rows_give_the_same_whitening_and_distances(count, dim):
    """Under 0.4 D rows the whitening is the symmetric ``C^(-1/2)`` built from the Gram
    matrix: still ``W C W^T = I``, and each score is the Mahalanobis distance to the
    nearest class mean under ``C``, as the explicit inverse of scikit-learn's C gives it."""
    features, labels, covariance = _features(count, dim, count)
    probes = np.random.default_rng(1).normal(size=(25, dim)) * 2.0
    scorer = fit_scorer(features, labels, probes, 0.2)
    whiten = scorer.whiten.astype(np.float64)
    assert np.abs(whiten @ covariance @ whiten.T - np.eye(dim)).max() < 1e-4
    assert np.abs(scorer.whiten - scorer.whiten.T).max() <= 1e-6 * np.abs(scorer.whiten).max()
    rows = features.astype(np.float64)
    means = np.stack([rows[labels == c].mean(0) for c in range(3)])
    gaps = (probes[:, None, :] - means[None]).reshape(-1, dim)
    squared = (gaps * np.linalg.solve(covariance, gaps.T).T).sum(1).reshape(len(probes), 3)
    expected = np.sqrt(squared.min(1))
    np.testing.assert_allclose(scorer.scores(probes), expected, rtol=1e-5)
    assert (scorer.rejects(scorer.scores(probes))).sum() == 5  # floor(0.2 x 25) above


def test_one_image_per_class_has_no_variance_and_still_fits():
    """Centred on their class means, one image per class leaves every row zero: the shrunk
    covariance is singular and the fit falls back to the jittered factorisation."""
    features = np.random.default_rng(2).normal(size=(3, 64)).astype(np.float32)
    scorer = fit_scorer(features, np.arange(3), features, 0.0)
    assert np.isfinite(scorer.whiten).all() and np.isfinite(scorer.threshold)
    diagonal = np.diag(scorer.whiten)
    assert (diagonal > 0).all() and (scorer.whiten == np.diag(diagonal)).all()  # jitter x I


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_features_are_refused_in_one_line(bad):
    """Few rows or many, a feature that is not finite stops the fit with the same error."""
    from resnet_ft.errors import InputError

    for count in (12, 120):
        features = np.random.default_rng(3).normal(size=(count, 64)).astype(np.float32)
        features[5, 7] = bad
        with pytest.raises(InputError, match=r"^the reject scorer's feature covariance does "
                                             r"not factor \(non-finite features\?\)$"), \
                np.errstate(invalid="ignore"):  # inf - inf on the way: that is the point
            fit_scorer(features, np.arange(count) % 3, features[:4], 0.1)
