"""The reject score: how far an image's pooled features lie from every class the run knows.

Class-conditional Mahalanobis distance with one covariance shared by the
classes: ``score(x) = min_c ||W (x - mean_c)||``, where ``W`` whitens the
pooled within-class covariance. It was chosen over the distance to the k
nearest training features by measurement (``benchmarks/bench_reject.py``;
the table is in the README's reject section), and because it is a
fixed-size summary — class means and one D x D matrix, whatever the number
of training images — that a SavedModel can compute as two matrix products.

Few images in a 2048-dimensional space give a singular covariance, so it is
shrunk towards a multiple of the identity by the Ledoit-Wolf rule (the
shrinkage that minimises the expected squared error; no knob to set). With
at least as many training images as feature dimensions the fit streams the
features in chunks: memory is O(D^2 + C D), never N x N. With fewer (a small
data set), the covariance is a multiple of the identity plus a term of rank
below N, and the whitening is built from the N x N Gram matrix's eigenvectors:
O(N^2 D + N D^2) instead of the O(D^3) of a Cholesky factorisation, for the same
distances; below 0.4 D images that is the cheaper (0.01 s against 0.3 s for 40
images at D = 2048, one core).

The threshold is calibrated on the validation images: with ``rate`` r and
n validation images, ``k = floor(r n)`` of them score above it (exactly, when
their scores are distinct). It lies midway between the k-th and (k+1)-th
largest scores (at the largest when k is 0), not on a score: the features
training cached come from the featurizer (batch norm folded), predict's from
the saved classifier, and the two differ in the last bits — a threshold on a
validation image's own score would flip that image either way. An image is
rejected when its score is strictly greater.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.errors import InputError
from resnet_ft.util.atomic import atomic_path

#: Feature rows per step of the fit and of scoring: bounds the temporary memory.
CHUNK = 4096
#: The arrays of the scorer file, and its format version.
FIELDS = ("centres", "whiten", "threshold", "rate", "version")
VERSION = 1


@dataclass(frozen=True)
class Scorer:
    """A fitted reject score and its threshold.

    ``whiten`` (D, D) maps features to a space where the shared covariance is
    the identity; ``centres`` (C, D) are the class means in that space.
    """

    centres: np.ndarray
    whiten: np.ndarray
    threshold: float
    rate: float

    def scores(self, features: Any) -> np.ndarray:
        """(N,) float64: the Mahalanobis distance of each feature row to its nearest class."""
        out = np.empty(len(features), np.float64)
        norms = (self.centres ** 2).sum(1)
        for start in range(0, len(features), CHUNK):
            z = np.asarray(features[start:start + CHUNK], np.float64) @ self.whiten.T
            squared = (z ** 2).sum(1)[:, None] - 2 * z @ self.centres.T + norms[None, :]
            out[start:start + CHUNK] = np.sqrt(np.maximum(squared.min(1), 0.0))
        return out

    def rejects(self, scores: np.ndarray) -> np.ndarray:
        """(N,) bool: the scores beyond the threshold."""
        return np.asarray(scores) > self.threshold

    def save(self, path: str | Path) -> None:
        """Write the scorer as one ``.npz`` file, atomically."""
        with atomic_path(path, ".npz") as tmp:
            np.savez(tmp, centres=self.centres, whiten=self.whiten, threshold=self.threshold,
                     rate=self.rate, version=VERSION)

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        """The scorer in ``path``; a one-line error when it is damaged or of another version."""
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {name: data[name] for name in FIELDS}
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"cannot read the reject scorer {path}: {exc}") from exc
        if int(stored["version"]) != VERSION:
            raise InputError(f"{path} is a reject scorer of version {int(stored['version'])}; "
                             f"this resnet-ft reads version {VERSION}")
        return cls(stored["centres"], stored["whiten"], float(stored["threshold"]),
                   float(stored["rate"]))


def fit_scorer(train: Any, labels: np.ndarray, val: Any, rate: float) -> Scorer:
    """The scorer of training features ``train`` (N, D) with class indices ``labels``
    (rows labelled -1 are left out), its threshold set on validation features ``val``."""
    labels = np.asarray(labels)
    means = _class_means(train, labels)
    whiten = None
    if 5 * np.count_nonzero(labels >= 0) < 2 * means.shape[1]:  # under 0.4 D rows (module doc)
        whiten = _low_rank_whitening(train, labels, means)
    if whiten is None:
        whiten = _whitening(_shrunk_covariance(train, labels, means))
    # float32 storage (half the file; a score's relative error stays ~1e-7), calibrated with
    # the stored matrix itself so the threshold and later scores use the same numbers
    whiten = whiten.astype(np.float32)
    scorer = Scorer(means @ whiten.T.astype(np.float64), whiten, math.inf, rate)
    return Scorer(scorer.centres, whiten, calibrate(scorer.scores(val), rate), rate)


def calibrate(scores: np.ndarray, rate: float) -> float:
    """The threshold above which ``floor(rate * n)`` of these ``n`` scores lie (module doc)."""
    ordered = np.sort(np.asarray(scores, np.float64))[::-1]
    k = math.floor(rate * len(ordered))
    return float(ordered[0] if k == 0 else (ordered[k - 1] + ordered[k]) / 2)


def _chunks(features: Any, labels: np.ndarray) -> Any:
    """``(rows float64, labels)`` of the labelled rows, ``CHUNK`` at a time."""
    for start in range(0, len(labels), CHUNK):
        keep = labels[start:start + CHUNK] >= 0
        rows = np.asarray(features[start:start + CHUNK], np.float64)
        yield rows[keep], labels[start:start + CHUNK][keep]


def _class_means(features: Any, labels: np.ndarray) -> np.ndarray:
    classes = int(labels.max()) + 1
    sums = np.zeros((classes, np.shape(features[:1])[-1]), np.float64)
    for rows, y in _chunks(features, labels):
        np.add.at(sums, y, rows)
    counts = np.bincount(labels[labels >= 0], minlength=classes)
    if (counts == 0).any():
        raise InputError("the reject scorer needs a training image of every class")
    return sums / counts[:, None]


def _centred(features: Any, labels: np.ndarray, means: np.ndarray) -> Iterator[np.ndarray]:
    """The labelled rows less their class means, ``CHUNK`` at a time."""
    for rows, y in _chunks(features, labels):
        yield rows - means[y]


def _fourth(centred: np.ndarray) -> float:
    """Ledoit and Wolf's fourth-moment term: the sum over rows of their squared norm, squared."""
    return float(((centred ** 2).sum(1) ** 2).sum())


def _shrunk_covariance(features: Any, labels: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The pooled within-class covariance, shrunk by Ledoit and Wolf's rule (as scikit-learn's
    ``ledoit_wolf`` computes it), accumulated chunk by chunk."""
    dim = means.shape[1]
    scatter, fourth, count = np.zeros((dim, dim)), 0.0, 0
    for centred in _centred(features, labels, means):
        scatter += centred.T @ centred
        fourth += _fourth(centred)
        count += len(centred)
    # in place: each new D x D float64 matrix is 32 MB of fresh pages at D = 2048
    empirical = np.divide(scatter, count, out=scatter)
    shrinkage, mu = _ledoit_wolf(float(np.trace(empirical)), float((empirical ** 2).sum()),
                                 fourth, count, dim)
    shrunk = np.multiply(empirical, 1 - shrinkage, out=empirical)
    shrunk.flat[:: dim + 1] += shrinkage * mu
    return shrunk


def _ledoit_wolf(trace: float, squares: float, fourth: float, count: int,
                 dim: int) -> tuple[float, float]:
    """``(shrinkage, mu)`` of the shrunk covariance ``(1 - shrinkage) S + shrinkage mu I``,
    from the empirical covariance S's trace, its sum of squares, and the sum over the
    centred rows of their squared norm squared."""
    mu = trace / dim
    beta = (fourth / count - squares) / (dim * count)
    delta = (squares - 2 * mu * trace + dim * mu ** 2) / dim
    return (0.0 if beta == 0 else min(beta, delta) / delta), mu


def _low_rank_whitening(features: Any, labels: np.ndarray,
                        means: np.ndarray) -> np.ndarray | None:
    """``C^(-1/2)`` for fewer centred rows ``R`` (N x D) than dimensions, or None where the
    shrunk covariance ``C`` is singular (no shrinkage, or zero variance) or not finite.

    ``S = R^T R / N`` is ``B diag(l) B^T`` on an orthonormal basis ``B`` of at most N
    columns, found from the eigenvectors ``v`` of the Gram matrix ``R R^T / N`` (same
    eigenvalues ``l``; ``B = R^T v / sqrt(N l)``). C has eigenvalues ``floor + (1 - s) l``
    on B and ``floor = s mu`` elsewhere, so ``C^(-1/2) = a I + B diag(b - a) B^T`` with
    ``a = floor^-1/2`` and ``b = (floor + (1 - s) l)^-1/2``. Eigenvalues at rounding level
    (below 1e-12 of the largest: the directions centring removed) are left to ``a``.
    """
    rows = np.concatenate(list(_centred(features, labels, means)))
    count, dim = rows.shape
    gram = rows @ rows.T / count
    shrinkage, mu = _ledoit_wolf(float(np.trace(gram)), float((gram ** 2).sum()),
                                 _fourth(rows), count, dim)
    floor = shrinkage * mu
    if not (np.isfinite(floor) and floor > 0):  # the factorisation says what is wrong
        return None
    values, vectors = np.linalg.eigh(gram)
    keep = values > 1e-12 * values.max()
    basis = rows.T @ (vectors[:, keep] / np.sqrt(count * values[keep]))
    scale = floor ** -0.5
    whiten = (basis * ((floor + (1 - shrinkage) * values[keep]) ** -0.5 - scale)) @ basis.T
    whiten.flat[:: dim + 1] += scale
    return whiten


def _whitening(covariance: np.ndarray) -> np.ndarray:
    """``W`` with ``W C W^T = I``: the inverse of C's Cholesky factor ``L`` (``C = L L^T``).

    Any such ``W`` gives the same distances (``W^T W = C^-1``); Cholesky costs a
    tenth of an eigen-decomposition at D = 2048. The shrunk covariance is
    positive definite; a singular one (no shrinkage, zero-variance directions)
    gets a jitter of 1e-10 of its mean variance, grown until it factors.
    """
    scale = max(float(np.trace(covariance)) / len(covariance), 1e-12)
    jitters = (0.0, *(scale * 1e-10 * 100 ** i for i in range(5)))
    if not np.isfinite(covariance).all():  # NumPy's Cholesky returns NaNs here, not an error
        jitters = ()
    for jitter in jitters:
        try:
            lower = np.linalg.cholesky(
                covariance + jitter * np.eye(len(covariance)) if jitter else covariance)
        except np.linalg.LinAlgError:
            continue
        return _lower_inverse(lower)
    raise InputError("the reject scorer's feature covariance does not factor (non-finite "
                     "features?)")


def _lower_inverse(lower: np.ndarray, leaf: int = 128) -> np.ndarray:
    """The inverse of a lower-triangular matrix, by halves: ``[[A, 0], [B, C]]^-1`` is
    ``[[A^-1, 0], [-C^-1 B A^-1, C^-1]]``. Matrix products do the work, a fifth of a general
    inverse's time at D = 2048 (NumPy has no triangular inverse of its own), to the same
    accuracy (``W L = I`` to 3e-16 there)."""
    size = len(lower)
    if size <= leaf:
        return np.linalg.inv(lower)
    half = size // 2
    top, bottom = _lower_inverse(lower[:half, :half]), _lower_inverse(lower[half:, half:])
    inverse = np.zeros_like(lower)
    inverse[:half, :half], inverse[half:, half:] = top, bottom
    inverse[half:, :half] = -(bottom @ (lower[half:, :half] @ top))
    return inverse
