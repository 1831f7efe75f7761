"""Fine-tuning modes: what trains per --trainable, two phases, the boundary cache, BN rule."""

from __future__ import annotations

import csv
import json
import math

import keras
import numpy as np
import pytest
from support.cli import SMALL

from resnet_ft.models.files import load_backbone, shared_backbone
from resnet_ft.models.head import assemble, build_head
from resnet_ft.models.params import summarize
from resnet_ft.models.unfreeze import phase2_model, set_trainable, split_backbone
from resnet_ft.runs.run import load_classifier
from resnet_ft.training.run import class_weights

HEAD = 2_103_301
#: convolution weights per stage of the slim ResNet-101 (what unfreezing trains)
STAGE = {"stem": 9_408, "block1": 212_992, "block2": 1_212_416, "block3": 26_017_792,
         "block4": 14_942_208}
#: BN gamma + beta per stage (trained too with --train-bn)
BN = {"stem": 128, "block1": 2_816, "block2": 7_168, "block3": 72_704, "block4": 22_528}
TOTAL = 42_605_504 + HEAD
ORDER = ["stem", "block1", "block2", "block3", "block4"]


@pytest.fixture(scope="module")
def loaded101(backbone101) -> keras.Model:
    """One loaded ResNet-101 for every mode (loading its 170 MB twelve times took ~35 s).

    ``set_trainable`` sets every layer's flag each time, so one mode's split cannot leak
    into the next.
    """
    return load_backbone(backbone101)


@pytest.mark.parametrize(
    ("mode", "first"),
    [("head", 5), ("block4", 4), ("block3", 3), ("block2", 2), ("block1", 1), ("all", 0)],
)
def test_summary_split_per_mode(loaded101, mode, first):
    for train_bn in (False, True):
        expected = HEAD + sum(STAGE[s] + (BN[s] if train_bn else 0) for s in ORDER[first:])
        model = assemble(loaded101, build_head(5, units=1024, dropout=0.5), 48,
                         mode, train_bn=train_bn)
        summary = summarize(model)
        assert summary.trainable == expected
        assert summary.total == TOTAL
        assert summary.non_trainable == TOTAL - expected


def test_bn_statistics_frozen_unless_train_bn(backbone50):
    # a seeded head: an unseeded 8-unit ReLU layer can start dead on all 4 inputs (it did once,
    # after other tests moved Keras' global RNG), and then no gradient reaches the backbone
    keras.utils.set_random_seed(0)
    backbone = load_backbone(backbone50)
    bn = backbone.get_layer("block4.unit_1.bottleneck_v1.conv1.BatchNorm")
    conv = backbone.get_layer("block4.unit_1.bottleneck_v1.conv1")
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 1024)).astype("float32")
    y = np.array([0, 1, 2, 3])
    for train_bn, changes in ((False, False), (True, True)):
        set_trainable(backbone, "block4", train_bn=train_bn)
        _, upper = split_backbone(backbone, "block4")
        model = phase2_model(upper, build_head(5, units=8, dropout=0.0))
        before = (np.array(bn.moving_mean), np.array(bn.gamma), np.array(conv.kernel))
        optimizer = keras.optimizers.SGD(0.1)
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        assert not np.array_equal(before[2], np.array(conv.kernel))  # the conv trains
        # frozen means bit for bit unchanged
        assert (not np.array_equal(before[0], np.array(bn.moving_mean))) == changes
        assert (not np.array_equal(before[1], np.array(bn.gamma))) == changes


def test_class_weights_balanced():
    labels = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(class_weights(labels, 2, "balanced"), [4 / 6, 4 / 2])
    np.testing.assert_allclose(class_weights(labels, 2, "none"), [1, 1])


def _history(run):
    return list(csv.DictReader((run / "history.csv").open()))


def test_two_phase_block4_run(flowers, backbone50, tmp_path, cli):
    # phase 1 at a negligible rate, phase 2 at a small real one (the stand-in's features are
    # large: 1e-3 makes block4 diverge): the best epoch is in phase 2, so the saved backbone
    # is the one phase 2 trained (a best epoch in phase 1 restores the original)
    args = ("train", flowers, "--backbone", backbone50, "--trainable", "block4",
            "--head-epochs", 1, "--epochs", 2, "--val-split", 0.25, "--lr", 1e-7,
            "--fine-tune-lr", 1e-5, "--cache-dir", tmp_path / "cache", *SMALL)
    shared = shared_backbone(backbone50)  # the copy features are computed from, in-process
    result = cli(*args, "-o", tmp_path / "run")
    assert result.code == 0, result.err
    assert "caching frozen stages" in result.out
    history = _history(tmp_path / "run")
    assert [(r["epoch"], r["phase"]) for r in history] == [("1", "1"), ("2", "2"), ("3", "2")]
    # lr at each epoch's last step: 30 images / 8 = 4 steps; phase 2 has 8, 1 of warm-up, then
    # half a cosine from 1e-5 to 0 over the other 7 (step 4: 3 of 7 done; step 8: all)
    expected = [1e-7, 1e-5 * 0.5 * (1 + math.cos(math.pi * 3 / 7)), 0.0]
    assert [float(r["lr"]) for r in history] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    model, _ = load_classifier(tmp_path / "run")
    summary = summarize(model)
    assert summary.trainable == HEAD + STAGE["block4"]  # block4: 3 units in ResNet-50 and 101
    bn_name = "block4.unit_1.bottleneck_v1.conv1.BatchNorm"
    original = load_backbone(backbone50)
    saved = model.get_layer(index=1)
    for name in ("block3.unit_6.bottleneck_v1.conv3", bn_name):  # frozen stage; frozen BN
        for ours, ref in zip(saved.get_layer(name).weights, original.get_layer(name).weights,
                             strict=True):
            np.testing.assert_array_equal(np.array(ours), np.array(ref))
    assert json.loads((tmp_path / "run" / "state" / "state.json").read_text())["best_phase"] == 2
    for unit in (1, 3):  # phase 2 really trained block4's convolutions
        name = f"block4.unit_{unit}.bottleneck_v1.conv2"
        ours = np.array(saved.get_layer(name).kernel)
        assert np.abs(ours - np.array(original.get_layer(name).kernel)).max() > 1e-6
        # trained in the run's own copy: the shared one still holds the file's weights
        np.testing.assert_array_equal(np.array(shared.get_layer(name).kernel),
                                      np.array(original.get_layer(name).kernel))
    assert shared_backbone(backbone50) is shared
    again = cli(*args, "-o", tmp_path / "again")
    assert again.code == 0 and "caching frozen stages" not in again.out


def test_boundary_cache_and_online_phase2_agree(flowers, backbone50, tmp_path, cli):
    common = (flowers, "--backbone", backbone50, "--trainable", "block4", "--head-epochs", 1,
              "--epochs", 1, "--no-augment", "--seed", 5, "--val-split", 0.25, *SMALL)
    cached = cli("train", *common, "-o", tmp_path / "c", "--cache-dir", tmp_path / "cache")
    online = cli("train", *common, "-o", tmp_path / "o", "--no-cache")
    assert cached.code == 0 and online.code == 0, cached.err + online.err
    a, b = _history(tmp_path / "c"), _history(tmp_path / "o")
    assert abs(float(a[0]["loss"]) - float(b[0]["loss"])) <= 1e-3  # phase 1: float32 features
    # phase 2 reads the boundary tensor stored as float16: each value off by at most 2^-11
    # (4.9e-4) relative, and the loss averages them, so its relative change stays of that
    # order (measured 9.6e-6); 1e-3 is twice the per-value bound
    assert abs(float(a[1]["loss"]) - float(b[1]["loss"])) <= 1e-3 * float(b[1]["loss"])


def test_options_and_online_augmentation(flowers, backbone50, tmp_path, cli):
    result = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "run",
                 "--epochs", 1, "--augment", "flip,crop,rotate,zoom,color", "--optimizer",
                 "sgd", "--label-smoothing", 0.1, "--class-weight", "balanced",
                 "--weight-decay", 1e-4, "--cache-dir", tmp_path / "cache", *SMALL)
    assert result.code == 0, result.err
    assert "running the backbone online" in result.out
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "optimizer: sgd" in config and "- zoom" in config
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n"] > 0


def test_mixed_precision_trains_and_saves_float32_backbone(flowers, backbone50, tmp_path, cli):
    result = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "run",
                 "--precision", "mixed_bfloat16", "--trainable", "block4", "--head-epochs", 1,
                 "--epochs", 1, "--val-split", 0.25, "--cache-dir", tmp_path / "cache", *SMALL)
    assert result.code == 0, result.err
    model, _ = load_classifier(tmp_path / "run")
    backbone = model.get_layer(index=1)
    assert backbone.get_layer("block4.unit_1.bottleneck_v1.conv1").dtype_policy.name == "float32"
    # the head is float32 whatever the run computed in (2 M MACs: precision saves nothing)
    assert model.get_layer("head").get_layer("head.dense").dtype_policy.name == "float32"
    assert model.get_layer("head").get_layer("head.logits").dtype_policy.name == "float32"
    assert summarize(model).trainable == HEAD + STAGE["block4"]
    import keras as k

    assert k.config.dtype_policy().name == "float32"  # the global policy was restored
