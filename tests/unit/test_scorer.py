"""The reject scorer's whitening, against scikit-learn's Ledoit-Wolf covariance."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.runs.scorer import fit_scorer


@pytest.mark.parametrize("dim", [2048, 300, 97])
def test_whitening_makes_the_shrunk_covariance_the_identity(dim):
    """``W C W^T = I`` at ResNet's 2048 and at sizes whose halves are odd (the triangular
    inverse works by halves), with ``W`` lower-triangular (the inverse Cholesky factor)."""
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(dim)
    labels = rng.integers(0, 3, 400)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    features = rng.normal(size=(400, dim)) @ mixing + labels[:, None] * 2.0
    means = np.stack([features[labels == c].mean(0) for c in range(3)])
    covariance, _ = ledoit_wolf(features - means[labels], assume_centered=True)
    scorer = fit_scorer(features.astype(np.float32), labels, features[:10], 0.1)
    whiten = scorer.whiten.astype(np.float64)
    assert np.abs(whiten @ covariance @ whiten.T - np.eye(dim)).max() < 1e-4  # float32 W
    assert (np.triu(scorer.whiten, 1) == 0).all()
