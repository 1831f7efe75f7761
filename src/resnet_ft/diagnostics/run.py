"""``doctor``: what is wrong with a data set, found from the features ``train`` caches anyway.

The story: split the data as ``train`` would and read both views' pooled
features through its cache; fingerprint every file (hashes of bytes, pixels
and perceptual variants); find exact duplicates, then near duplicates
(hashes and feature cosines, :mod:`~resnet_ft.diagnostics.neighbours`);
group them; train heads on k group-aware folds for out-of-fold probabilities
(``train``'s arithmetic, all folds at once: :mod:`resnet_ft.training.crossval.fit`)
and rank likely label errors and weak slices (clusters of the features where those
predictions are much worse); flag images far from every class and images of poor quality
(scored in the fingerprinting pass); write the report, and with ``--fix-split`` a
leakage-free ``split.csv`` that keeps every duplicate group on one side. The data
folder is only read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.folds import stratified_folds
from resnet_ft.diagnostics.duplicates import Thresholds, exact_pairs, groups, near_pairs
from resnet_ft.diagnostics.fingerprints import fingerprints
from resnet_ft.diagnostics.labels import NEIGHBOURS
from resnet_ft.diagnostics.neighbours import feature_neighbours, hash_pairs, normalise
from resnet_ft.diagnostics.report import DoctorReport, check_out_dir, write_report
from resnet_ft.diagnostics.rows import Rows
from resnet_ft.diagnostics.shape import dataset_shape
from resnet_ft.diagnostics.slices import weak_slices
from resnet_ft.diagnostics.split import leakage_free
from resnet_ft.training.crossval.features import LabelledFeatures, load_features
from resnet_ft.training.crossval.fit import cross_validate, out_of_fold
from resnet_ft.training.plan import plan_inputs

#: Views read per image: the image and its mirror (mirrored copies, and train's flips).
VIEWS = 2


def default_out_dir(data_dir: str | Path) -> Path:
    """``./<DATA_DIR name>.doctor``: beside the current directory's files, not in the data."""
    return Path.cwd() / f"{Path(data_dir).resolve().name}.doctor"


def diagnose(config: TrainConfig, out_dir: str | Path | None = None, *, folds: int = 5,
             fix_split: bool = False, thresholds: Thresholds | None = None,
             console: Console | None = None) -> DoctorReport:
    """Examine ``config.data_dir`` (and ``val_dir``); write the report to ``out_dir``."""
    console = console or Console(stderr=True)
    thresholds = thresholds or Thresholds()
    config.require_sources()
    out = Path(out_dir) if out_dir is not None else default_out_dir(config.data_dir)
    check_out_dir(out, [Path(p) for p in (config.data_dir, config.val_dir) if p])
    data = load_features(config, VIEWS, console)
    prints = fingerprints([s.path for s in data.samples], console)
    usable = data.usable & np.array([i not in prints.errors for i in range(len(data.samples))])
    table = Rows(data, usable)
    index = np.flatnonzero(usable)
    views = normalise(data.values[index], data.values[index, 0].mean(0))
    exact = exact_pairs(prints.bytes_hash, prints.pixel_hash, usable)
    near, affinity = _near(data, index, views, prints.hashes, _within_sets(exact), thresholds)
    group = groups(len(data.samples), [(a, b) for a, b, _ in exact] + [n[:2] for n in near])
    notes: list[str] = []
    probs = _out_of_fold(config, data, usable, group, folds, notes)
    findings = {
        "exact_duplicates": [table.pair(a, b, group, 1.0, reason) for a, b, reason in exact],
        "near_duplicates": [table.pair(a, b, group, score, reason, hash_distance=bits,
                                       feature_similarity=sim)
                            for a, b, score, reason, bits, sim in near],
        "duplicate_groups": table.duplicate_groups(group),
        "label_issues": table.label_issues(probs) if probs is not None else [],
        "slices": [] if probs is None else table.slices(weak_slices(
            views[:, 0], probs[index].argmax(1) == data.labels[index], config.seed), index),
        "outliers": table.outliers(affinity),
        "quality": table.quality(prints.quality),
        "unreadable": table.unreadable({**prints.errors, **data.errors}),
    }
    report = DoctorReport(str(config.data_dir), out, dataset_shape(data.split, prints.sizes,
                                                                    usable),
                          findings, notes, data.extracted)
    split_csv = None
    if fix_split:
        split_csv = leakage_free(data.split, group, config.val_split, config.seed).to_csv()
        report.split_file = str(out / "split.csv")
    write_report(report, split_csv)
    return report


def _near(data: LabelledFeatures, index: np.ndarray, views: np.ndarray, hashes: np.ndarray,
          exact: set[tuple[int, int]], thresholds: Thresholds):
    """Near-duplicate rows (sample indices) and the per-class affinities of every sample.

    ``views`` are the normalised features of the usable samples ``index``.
    """
    labels = data.labels[index]
    classes = len(data.split.labels)
    feats = feature_neighbours(views, labels, classes,
                               min(thresholds.feature_confirm, thresholds.feature_alone),
                               NEIGHBOURS)
    bits = hash_pairs(hashes[index], thresholds.hash_with_features)
    for pairs in (feats.pairs, bits):  # back to sample indices
        pairs.i, pairs.j = index[pairs.i], index[pairs.j]
    affinity = np.full((len(data.samples), classes), np.nan, np.float32)
    affinity[index] = feats.affinity
    return near_pairs(bits, feats.pairs, exact, thresholds), affinity


def _within_sets(exact: list[tuple[int, int, str]]) -> set[tuple[int, int]]:
    """Every pair ``(i < j)`` inside a set of identical files: none is also a near duplicate.

    ``exact`` pairs each file with its set's first, so the third copy's pair
    with the second is not among them, yet must not be reported as near.
    """
    sets: dict[int, set[int]] = {}
    for first, other, _ in exact:
        sets.setdefault(first, {first}).add(other)
    return {(a, b) for members in sets.values() for a in members for b in members if a < b}


def _out_of_fold(config: TrainConfig, data: LabelledFeatures, usable: np.ndarray,
                 group: np.ndarray, folds: int, notes: list[str]) -> np.ndarray | None:
    """Out-of-fold class probabilities of every sample (NaN rows for unusable ones)."""
    labels = data.labels[usable]
    smallest = int(np.bincount(labels, minlength=len(data.split.labels)).min())
    folds = min(folds, smallest)
    if folds < 2:
        notes.append("label errors not checked: a class has fewer than 2 usable images")
        return None
    assignment = stratified_folds(labels, folds, config.seed, groups=group[usable])
    features = data.values[usable][:, : plan_inputs(config).views]
    fits = cross_validate(config, len(data.split.labels), features, labels, assignment)
    probs = np.full((len(data.samples), len(data.split.labels)), np.nan, np.float32)
    probs[usable] = out_of_fold(fits, assignment, len(data.split.labels))
    notes.append(f"out-of-fold probabilities from {folds} folds (mean held-out accuracy "
                 f"{np.mean([f.val_accuracy for f in fits]):.3f})")
    return probs
