"""Exact and near duplicates: which files, how sure, and why it matters (the category).

A pair is reported in the categories that apply: ``within class`` (harmless
but weighting that photo twice), ``across classes`` (contradictory labels),
``across train/val`` (leakage: the validation score is inflated), the last
only when the data has an explicit validation folder (a seeded split is
remade by ``--fix-split`` instead). Exact duplicates share their bytes, or
their decoded pixels. Near duplicates
are found by the perceptual hashes (resized, re-encoded, mirrored, 90 %
cropped copies), confirmed or extended by the similarity of the centred
pooled features with the mirrored view counted; features alone count only
when nearly identical, so a poor backbone cannot flood the report. The
default thresholds are calibrated in docs/commands/doctor.md (measured on generated copies
of real photos against distinct photos).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resnet_ft.diagnostics.pairs import Pairs

#: Hash distance (bits of 64) that makes a near duplicate on its own.
HASH_DISTANCE = 8
#: A larger hash distance that still counts with feature cosine >= FEATURE_CONFIRM.
HASH_WITH_FEATURES, FEATURE_CONFIRM = 12, 0.97
#: Feature cosine that counts on its own (real weights: semantic near-copies).
FEATURE_ALONE = 0.995
HASH_BITS = 64


@dataclass
class Thresholds:
    """The near-duplicate rule's thresholds (defaults: the calibrated ones)."""

    hash_distance: int = HASH_DISTANCE
    hash_with_features: int = HASH_WITH_FEATURES
    feature_confirm: float = FEATURE_CONFIRM
    feature_alone: float = FEATURE_ALONE


def exact_pairs(bytes_hash: list[str], pixel_hash: list[str],
                usable: np.ndarray) -> list[tuple[int, int, str]]:
    """``(first, other, reason)``: every file paired with the first file of its identical set.

    Same bytes is checked first; files that differ in bytes but decode to the
    same pixels form their own sets.
    """
    pairs: list[tuple[int, int, str]] = []
    seen: set[int] = set()
    for hashes, reason in ((bytes_hash, "identical bytes"), (pixel_hash, "identical pixels")):
        first: dict[str, int] = {}
        for index in np.flatnonzero(usable):
            key = hashes[index]
            if key not in first:
                first[key] = int(index)
            elif int(index) not in seen:
                pairs.append((first[key], int(index), reason))
                seen.add(int(index))
    return pairs


def near_pairs(hashes: Pairs, features: Pairs, exact: set[tuple[int, int]],
               thresholds: Thresholds) -> list[tuple[int, int, float, str, int | None,
                                                       float | None]]:
    """``(a, b, score, reason, hash distance, cosine)`` of pairs the rule accepts.

    ``hashes`` holds pairs within ``hash_with_features`` bits, ``features``
    pairs with cosine >= ``feature_confirm``; exact duplicates are left out.
    The score is the stronger evidence: 1 - distance/64, or the cosine.
    """
    distance = hashes.as_dict()
    cosine = features.as_dict()
    found = []
    for key in sorted(set(distance) | set(cosine)):
        if key in exact:
            continue
        bits, sim = distance.get(key), cosine.get(key)
        by_hash = bits is not None and bits <= thresholds.hash_distance
        confirmed = (bits is not None and sim is not None
                     and bits <= thresholds.hash_with_features
                     and sim >= thresholds.feature_confirm)
        by_features = sim is not None and sim >= thresholds.feature_alone
        if not (by_hash or confirmed or by_features):
            continue
        evidence = []
        if bits is not None:
            evidence.append(f"perceptual hash {int(bits)}/{HASH_BITS} bits apart")
        if sim is not None:
            evidence.append(f"feature cosine {sim:.4f}")
        score = max(1 - bits / HASH_BITS if bits is not None else 0.0, sim or 0.0)
        found.append((key[0], key[1], float(score), ", ".join(evidence),
                      None if bits is None else int(bits), sim))
    return found


def categories(a: int, b: int, labels: np.ndarray, in_val: np.ndarray,
               explicit_split: bool) -> list[str]:
    """Why a pair matters: within class / across classes, and across train/val (leakage)."""
    found = ["within class" if labels[a] == labels[b] else "across classes"]
    if explicit_split and in_val[a] != in_val[b]:
        found.append("across train/val")
    return found


def groups(count: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Connected components of the duplicate graph: a group id per sample (union-find)."""
    parent = np.arange(count)

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(count)])
