"""The doctor's arithmetic on hand-made inputs: searches against brute force, rules by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_ft.data.folders import Sample, Split
from resnet_ft.data.folds import stratified_folds
from resnet_ft.diagnostics.labels import label_issues, outliers
from resnet_ft.diagnostics.neighbours import feature_neighbours, hash_pairs, normalise
from resnet_ft.diagnostics.split import leakage_free


def test_hash_pairs_equal_brute_force_over_variants_and_directions():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, (60, 4), dtype=np.uint64)
    hashes[7, 2] = hashes[30, 0] ^ np.uint64(0b101)  # 30's whole image is 2 bits from a crop of 7
    hashes[41, 0] = hashes[12, 1]  # 41 is the mirror of 12
    found = hash_pairs(hashes, max_distance=3).as_dict()
    expected = {}
    for a in range(60):
        for b in range(a + 1, 60):
            d = min(bin(int(hashes[x, v]) ^ int(hashes[y, 0])).count("1")
                    for x, y in ((a, b), (b, a)) for v in range(4))
            if d <= 3:
                expected[(a, b)] = d
    assert found == expected and expected == {(7, 30): 2, (12, 41): 0}


def test_feature_neighbours_match_a_dense_computation():
    rng = np.random.default_rng(1)
    views = normalise(rng.normal(size=(50, 2, 16)), 0.0)
    views[9] = views[3, ::-1]  # 9 is the mirror of 3: its views are 3's, swapped
    labels = np.arange(50) % 3
    result = feature_neighbours(views, labels, 3, threshold=0.999, k=4)
    assert result.pairs.as_dict().keys() == {(3, 9)}
    sims = np.maximum(views[:, 0] @ views[:, 0].T, views[:, 0] @ views[:, 1].T)
    np.fill_diagonal(sims, -np.inf)
    for i in (0, 9, 31):
        for klass in range(3):
            top = np.sort(sims[i, labels == klass])[-4:]
            assert result.affinity[i, klass] == np.float32(top.mean())


def test_confident_learning_flags_the_confident_other_class():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9],  # third: labelled 0, confidently 1
                      [0.2, 0.8], [0.3, 0.7], [0.55, 0.45]])  # last: unsure, not confident 0
    # thresholds: class 0 = mean(0.9, 0.8, 0.1) = 0.6, class 1 = mean(0.8, 0.7, 0.45) = 0.65
    [issue] = label_issues(probs, labels)
    assert (issue.index, issue.suggested) == (2, 1)
    assert abs(issue.score - 0.8) < 1e-9 and abs(issue.threshold - 0.65) < 1e-9


def test_outlier_is_far_below_the_median_affinity():
    affinity = np.array([[0.8, 0.1], [0.1, 0.82], [0.79, 0.2], [0.2, 0.81], [0.15, 0.1],
                         [0.78, 0.3]])
    [found] = outliers(affinity, z=4.0)
    assert found.index == 4 and found.nearest == 0
    # best per image: .8 .82 .79 .81 .15 .78 -> median .795; |deviations| median .015
    assert abs(found.score - (0.795 - 0.15) / (1.4826 * 0.015)) < 1e-4


def test_folds_are_stratified_seeded_and_keep_groups_whole():
    labels = np.repeat([0, 1, 2], 20)
    groups = np.arange(60) // 2  # pairs
    folds = stratified_folds(labels, 4, seed=3, groups=groups)
    assert np.array_equal(folds, stratified_folds(labels, 4, seed=3, groups=groups))
    for g in range(30):
        assert len(set(folds[groups == g])) == 1
    for klass in range(3):
        assert sorted(np.bincount(folds[labels == klass], minlength=4)) == [4, 4, 6, 6]


def _split(source: str, n_train: int, n_val: int) -> Split:
    samples = [Sample(Path(f"c{i % 2}/{i:03d}.jpg"), i % 2) for i in range(n_train + n_val)]
    return Split(["a", "b"], samples[:n_train], samples[n_train:], source)


def test_explicit_split_moves_straddling_groups_to_training():
    split = _split("folders", 8, 4)
    group = np.arange(12)
    group[9] = 1  # validation file 9 copies training file 1
    fixed = leakage_free(split, group, 0.25, 0)
    assert [s.path.name for s in fixed.val] == ["008.jpg", "010.jpg", "011.jpg"]
    assert len(fixed.train) == 9


def test_seeded_split_deals_whole_groups():
    split = _split("split", 36, 4)
    index = np.arange(40)
    group = index // 4 * 4 + index % 2  # pairs of files of one class: (0, 2), (1, 3), ...
    fixed = leakage_free(split, group, 0.2, 7)
    side = {str(s.path): "val" for s in fixed.val}
    for g in np.unique(group):
        members = {side.get(str(s.path), "train") for s, gg in
                   zip(split.train + split.val, group, strict=True) if gg == g}
        assert len(members) == 1
    assert len(fixed.val) == 8 and len(fixed.train) == 32
