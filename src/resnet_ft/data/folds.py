"""Stratified, seeded, group-aware fold assignment.

Cross-validation is only honest when an image and its copies sit in the same
fold: otherwise a held-out image is "predicted" from its twin in the training
folds. ``groups`` (e.g. near-duplicate groups from ``doctor``) keeps every
group whole; each class is dealt across folds so every fold holds its share.
"""

from __future__ import annotations

import numpy as np


def stratified_folds(labels: np.ndarray, folds: int, seed: int,
                     groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index (0 .. folds-1) per sample.

    Groups are shuffled (seeded) and dealt, largest first within each class
    (a group's class is its most common label), to the fold that holds the
    fewest samples of that class so far; ties go to the fold with fewest
    samples overall, then the lowest index.
    """
    labels = np.asarray(labels)
    if groups is None:
        groups = np.arange(len(labels))
    _, inverse = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"),
                       np.cumsum(np.bincount(inverse))[:-1])
    shuffled = np.random.default_rng([seed, folds]).permutation(len(members))
    order = sorted(shuffled, key=lambda g: -len(members[g]))  # stable: keeps the shuffle in ties
    per_class = np.zeros((labels.max() + 1, folds), np.int64)
    totals = np.zeros(folds, np.int64)
    assignment = np.empty(len(labels), np.int64)
    for group in order:
        idx = members[group]
        klass = np.bincount(labels[idx]).argmax()
        fold = min(range(folds), key=lambda f: (per_class[klass, f], totals[f], f))
        assignment[idx] = fold
        per_class[klass, fold] += len(idx)
        totals[fold] += len(idx)
    return assignment
