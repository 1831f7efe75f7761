"""int8's choices, without running a network: the engine's availability, the calibration
sample, and what the quantised model's cache key depends on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from resnet_ft.data.folders import Sample
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.data.sampling import calibration_sample
from resnet_ft.errors import InputError
from resnet_ft.features.engines import EngineContext
from resnet_ft.features.engines.openvino import centred_cosines, model_key
from resnet_ft.models import precision


def _samples(tmp_path: Path, counts: dict[int, int]) -> list[Sample]:
    samples = []
    for label, count in counts.items():
        for index in range(count):
            path = tmp_path / f"c{label}" / f"{index:03d}.jpg"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"x" * (index + 1))
            samples.append(Sample(path, label))
    return samples


def test_the_sample_is_stratified_seeded_and_keeps_its_held_out_images_apart(tmp_path):
    train = _samples(tmp_path, {0: 50, 1: 30, 2: 8})
    sample = calibration_sample(train, 30, seed=3)
    labels = {s.path: s.label for s in train}
    counts = np.bincount([labels[p] for p in sample.files], minlength=3)
    assert counts.tolist() == [11, 11, 8]  # dealt round-robin: every class its share
    assert len(sample.held_out) == 58 and not set(sample.files) & set(sample.held_out)
    assert calibration_sample(train, 30, seed=3) == sample  # seeded
    assert calibration_sample(train, 30, seed=4).files != sample.files
    small = calibration_sample(train[:12], 256)  # a small set keeps a quarter to check on
    assert (len(small.files), len(small.held_out)) == (9, 3)


def test_the_sample_identity_follows_its_files(tmp_path):
    train = _samples(tmp_path, {0: 4, 1: 4})
    sample = calibration_sample(train, 4)
    before = sample.identity
    sample.files[0].write_bytes(b"changed, and longer")
    assert sample.identity != before


def test_a_quantised_model_is_another_on_each_kind_of_change(tmp_path):
    train = _samples(tmp_path, {0: 6, 1: 6})

    def key(identity: str, size: int, files: int, cut: str | None = None) -> str:
        context = EngineContext(tmp_path, identity, Preprocessing(size), Console(quiet=True),
                                calibration_sample(train, files), lambda p: p, lambda p: p)
        return model_key(context, cut)

    base = key("a" * 64, 224, 6)
    assert key("a" * 64, 224, 6) == base  # the same: a hit
    assert key("b" * 64, 224, 6) != base  # other weights
    assert key("a" * 64, 192, 6) != base  # other preprocessing
    assert key("a" * 64, 224, 6, "block4") != base  # another cut point
    assert key("a" * 64, 224, 4) != base  # another calibration sample


def test_int8_without_its_packages_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(InputError) as error:
        precision.resolve_precision("int8")
    assert str(error.value) == ("--precision int8 needs nncf, not installed: pip install "
                                "'resnet-ft[openvino]'")


def test_int8_computes_the_trainable_parts_as_auto_would():
    assert precision.keras_precision("int8", flags=lambda: frozenset({"avx512_bf16"})) == \
        "mixed_bfloat16"
    assert precision.keras_precision("int8", flags=frozenset) == "float32"
    assert precision.keras_precision("mixed_float16") == "mixed_float16"


def test_centred_cosines_are_measured_against_the_references_mean():
    rng = np.random.default_rng(0)
    reference = 20.0 + rng.normal(size=(20, 16))  # all pointing the same way, as pooled
    assert centred_cosines(reference, reference) == pytest.approx({"median": 1.0,
                                                                   "worst": 1.0})
    noisy = reference + rng.normal(scale=1.0, size=reference.shape)
    plain = (noisy * reference).sum(1) / np.linalg.norm(noisy, axis=1) / np.linalg.norm(
        reference, axis=1)
    centred = centred_cosines(noisy, reference)
    assert plain.min() > 0.99 > centred["median"]  # centring exposes what raw cosines hide
