"""Doctor's quality checks, duplicate groups and weak slices on small hand-made inputs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from rich.console import Console
from support.plant import photo_like

from resnet_ft.data.folders import Sample, Split
from resnet_ft.diagnostics.duplicates import groups
from resnet_ft.diagnostics.fingerprints import fingerprints
from resnet_ft.diagnostics.quality import flagged
from resnet_ft.diagnostics.rows import Rows
from resnet_ft.diagnostics.slices import binomial_tail, is_weak, slice_count, weak_slices
from resnet_ft.diagnostics.split import leakage_free
from resnet_ft.training.crossval.features import LabelledFeatures


def _damage(image: Image.Image, check: str) -> Image.Image:
    """A copy of a clean image that one check (only) must flag."""
    if check == "dark":
        return ImageEnhance.Brightness(image).enhance(0.25)
    if check == "overexposed":
        return Image.blend(image, Image.new("RGB", image.size, "white"), 0.7)
    if check == "blurry":
        return image.filter(ImageFilter.GaussianBlur(0.03 * max(image.size)))
    if check == "low_information":
        return ImageEnhance.Contrast(image).enhance(0.08)
    if check == "odd_aspect_ratio":
        wide = image.resize((image.width * 8, image.height * 8), Image.Resampling.NEAREST)
        return wide.crop((0, 0, wide.width, wide.width // 10))
    if check == "tiny":
        return image.resize((image.width // 3, image.height // 3), Image.Resampling.BOX)
    return ImageOps.grayscale(image).convert("RGB")


CHECK_NAMES = ("dark", "overexposed", "blurry", "low_information", "odd_aspect_ratio", "tiny",
               "grayscale")


def test_each_quality_check_flags_its_damaged_copy_and_no_clean_image(tmp_path):
    # 8 images; not the daisies: white discs on grey scenes are grey images (rightly flagged)
    clean = sorted(p for p in photo_like(tmp_path / "clean", 2, seed=11).glob("*/*.jpg")
                   if p.parent.name != "daisy")
    damaged = {}
    for number, check in enumerate(CHECK_NAMES):
        damaged[check] = tmp_path / f"{check}.jpg"
        _damage(Image.open(clean[number]).convert("RGB"), check).save(damaged[check], quality=95)
    paths = clean + list(damaged.values())
    prints = fingerprints(paths, Console(file=io.StringIO()))
    found = flagged(prints.quality, np.ones(len(paths), bool))
    assert sorted((check.name, paths[i].name) for i, check, _ in found) == sorted(
        (check, f"{check}.jpg") for check in CHECK_NAMES)
    for _, check, score in found:  # the score is on the flagged side of the threshold
        assert (score < check.threshold) if check.below else (score > check.threshold)


def _features(names: list[str], labels: list[int], val: set[int]) -> LabelledFeatures:
    samples = [Sample(Path(f"{n}.jpg"), c) for n, c in zip(names, labels, strict=True)]
    train = [s for i, s in enumerate(samples) if i not in val]
    split = Split(["cat", "dog"], train, [s for i, s in enumerate(samples) if i in val],
                  "folders")
    return LabelledFeatures(split, np.zeros((len(samples), 1, 4), np.float32), {}, 0)


def test_duplicate_groups_join_a_chain_and_keep_a_separate_pair():
    # training a, b, x, d; validation c, e, y: a~b and b~c (a chain), d~e a separate pair
    data = _features(["a", "b", "x", "d", "c", "e", "y"], [0, 0, 1, 1, 1, 1, 0], {4, 5, 6})
    group = groups(7, [(0, 1), (1, 4), (3, 5)])
    rows = Rows(data, np.ones(7, bool)).duplicate_groups(group)
    assert [(r["group"], r["size"], r["file"], r["label"], r["subset"], r["classes"],
             r["sides"], r["score"]) for r in rows] == [
        (0, 3, "a.jpg", "cat", "train", "cat; dog", "train; val", 3),
        (0, 3, "b.jpg", "cat", "train", "cat; dog", "train; val", 3),
        (0, 3, "c.jpg", "dog", "val", "cat; dog", "train; val", 3),
        (3, 2, "d.jpg", "dog", "train", "dog", "train; val", 2),
        (3, 2, "e.jpg", "dog", "val", "dog", "train; val", 2)]
    assert rows[0]["reason"] == "3 copies of one image in 2 classes (cat, dog), train and val"
    fixed = leakage_free(data.split, group, 0.2, 0)
    assert fixed.to_csv().splitlines() == [
        "file,label,subset", "a.jpg,cat,train", "b.jpg,cat,train", "x.jpg,dog,train",
        "d.jpg,dog,train", "c.jpg,dog,train", "e.jpg,dog,train", "y.jpg,cat,val"]
    for seed in range(20):  # a seeded split is dealt again: the chain never straddles
        remade = leakage_free(Split(["cat", "dog"], data.samples, [], "split"), group, 0.5, seed)
        sides = {s.path.name: "val" for s in remade.val}
        assert len({sides.get(f"{n}.jpg", "train") for n in "abc"}) == 1, seed
        assert len({sides.get(f"{n}.jpg", "train") for n in "de"}) == 1, seed


def test_binomial_tail_equals_the_sum_of_terms():
    for correct, total, rate in ((3, 10, 0.9), (0, 5, 0.5), (12, 30, 0.8), (30, 30, 0.8)):
        expected = sum(math.comb(total, i) * rate**i * (1 - rate) ** (total - i)
                       for i in range(correct + 1))
        assert binomial_tail(correct, total, rate) == pytest.approx(expected, rel=1e-9)


def test_a_slice_is_weak_only_far_below_and_unlikely_by_chance_among_all_slices():
    # 8 of 12 right at 0.9 overall: 0.23 below, P(X <= 8) = 0.026 by the binomial sum
    assert is_weak(8 / 12, 0.026, 0.9, slices=1)
    assert not is_weak(8 / 12, 0.026, 0.9, slices=9)  # 0.026 > 0.05 / 9: chance among 9
    # 880 of 1000 right at 0.95: certainly worse (p ~ 1e-17), but only 0.07 below
    assert not is_weak(0.88, 1e-17, 0.95, slices=9)
    assert is_weak(0.85, 1e-17, 0.95, slices=9)


def test_a_planted_hard_cluster_is_the_one_weak_slice():
    """Five easy class blobs (50 images, 2 wrong each) and one hard blob of 30 (6 right)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 32)) * 4
    members = np.repeat(np.arange(6), [50] * 5 + [30])
    views = centres[members] + rng.normal(size=(280, 32))
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    correct = np.ones(280, bool)
    for blob in range(5):
        correct[np.flatnonzero(members == blob)[:2]] = False
    hard = np.flatnonzero(members == 5)
    correct[hard[6:]] = False
    assert slice_count(280) == 9
    found = weak_slices(views, correct, seed=0)
    # k-means (k = 9 for 6 blobs) may cut the hard blob in two; the weak slices are exactly it
    assert sorted(i for weak in found for i in weak.members) == list(hard)
    assert len(found) <= 2 and sum(round(w.accuracy * len(w.members)) for w in found) == 6
    for weak in found:
        assert weak.overall == pytest.approx(1 - 34 / 280) and weak.p_value < 0.05 / 9
        assert len(weak.representatives) == 3 and set(weak.representatives) <= set(weak.members)
        own = views[weak.members]
        nearest = weak.members[np.argmin(np.linalg.norm(own - own.mean(0), axis=1))]
        assert nearest in weak.representatives  # representatives sit at the centroid


def test_slice_rows_name_the_samples_behind_the_positions():
    """Slices are found among the usable rows only: positions map back through ``rows``."""
    from resnet_ft.diagnostics.slices import Slice

    data = _features(["a", "b", "c", "d", "e", "f"], [0, 1, 1, 1, 0, 1], set())
    rows = np.array([0, 2, 3, 4, 5])  # b is unusable
    weak = Slice(np.array([1, 2, 4]), 1 / 3, 0.8, 0.004, 2, [2, 1, 4])
    [row] = Rows(data, np.isin(np.arange(6), rows)).slices([weak], rows)
    assert row == {
        "slice": 0, "size": 3, "accuracy": 1 / 3, "overall_accuracy": 0.8, "p_value": 0.004,
        "classes": "dog 3", "file_1": "d.jpg", "file_2": "c.jpg", "file_3": "f.jpg",
        "score": pytest.approx(0.8 - 1 / 3),
        "reason": "out-of-fold accuracy 0.333 on 3 similar images vs 0.800 overall "
                  "(binomial p=0.004 < 0.05/2 slices)"}
