"""Nothing silently wrong: NaN and infinity stop a run (or fail one file), never become a model.

Each test plants the fault a user met — a NaN in a cached feature, a backbone with an
infinite BatchNorm beta, a learning rate that diverges, a head whose weights went NaN, a
checkpoint with an infinite or integer tensor — and checks the one ``error:`` line, the
exit code, what is left on disk, and that the run can go on once the cause is fixed.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.cli import assert_convert_fails, assert_one_line_error

from resnet_ft.conversion.formats import slim
from resnet_ft.conversion.standin import random_weights, slim_variable_shapes
from resnet_ft.errors import NonFiniteError

BASE = ("--val-split", 0.25, "--image-size", 48, "--batch-size", 8)


def _history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _values_region(shard: Path) -> tuple[int, np.dtype]:
    """Where the values of a shard start, and their dtype (read with numpy's .npy functions)."""
    source = io.BytesIO(shard.read_bytes())
    for _ in range(3):
        np.lib.format.read_magic(source)
        shape, _, dtype = np.lib.format.read_array_header_1_0(source)
        source.seek(source.tell() + int(np.prod(shape)) * dtype.itemsize)
    np.lib.format.read_magic(source)
    _, _, dtype = np.lib.format.read_array_header_1_0(source)
    return source.tell(), dtype


def test_a_nan_written_into_a_cached_feature_never_reaches_training(flowers, backbone50,
                                                                    tmp_path, cli):
    """The reported defect: one float16 feature set to NaN on disk gave a NaN model, exit 0."""
    args = ("train", flowers, "--backbone", backbone50, "--epochs", 2, "--precision",
            "mixed_bfloat16", "--cache-dir", tmp_path / "cache", *BASE)
    first = cli(*args, "-o", tmp_path / "first")
    assert first.code == 0, first.err
    shard, = (tmp_path / "cache").rglob("*.shard")
    start, dtype = _values_region(shard)
    assert dtype == np.float16  # bfloat16 runs store float16
    data = bytearray(shard.read_bytes())
    data[start + 2 * 100 : start + 2 * 101] = np.float16(np.nan).tobytes()  # one value: NaN
    shard.write_bytes(bytes(data))
    second = cli(*args, "-o", tmp_path / "second")
    assert second.code == 0, second.err
    assert f"set aside {shard}" in second.out and "they are computed again" in second.out
    assert "extracting features: 40/40" in second.out  # every entry computed again
    assert _history(tmp_path / "second") == [
        {**row, "seconds": new["seconds"]}
        for row, new in zip(_history(tmp_path / "first"), _history(tmp_path / "second"),
                            strict=True)]  # the same training, number for number
    assert shard.with_name(shard.name + ".damaged").is_file()


@pytest.fixture(scope="module")
def broken_backbone(backbone50, module_tmp) -> Path:
    """The ResNet-50 stand-in with one BatchNorm beta set to +inf (as a bad edit would)."""
    from resnet_ft.models.files import load_backbone, read_metadata, save_model

    model = load_backbone(backbone50)
    norm = model.get_layer("block2.unit_1.bottleneck_v1.conv2.BatchNorm")
    gamma, beta, mean, variance = norm.get_weights()
    beta[3] = np.inf
    norm.set_weights([gamma, beta, mean, variance])
    path = module_tmp("broken") / "broken.keras"
    save_model(model, path, read_metadata(backbone50))
    return path


def test_a_backbone_holding_infinity_is_refused_before_extraction(flowers, broken_backbone,
                                                                  tmp_path, cli):
    """Found: such a backbone trained with loss nan (or, once grappler had optimised the
    graph, on the same finite features for every image) and wrote model.keras, exit 0."""
    run = tmp_path / "run"
    result = cli("train", flowers, "--backbone", broken_backbone, "-o", run, "--epochs", 1,
                 "--cache-dir", tmp_path / "cache", *BASE, "--precision", "float32")
    assert_one_line_error(result, f"the backbone {broken_backbone} holds NaN or infinity in 1 "
                          "weight(s)", "conv2.BatchNorm", "Convert the checkpoint again",
                          code=1)
    assert not (run / "model.keras").exists()
    assert list((tmp_path / "cache").rglob("*.shard")) == []  # nothing stored


def test_non_finite_features_are_reported_by_file_and_never_stored(tmp_path):
    """Whatever else makes a backbone compute NaN (here: its outputs), nothing is stored."""
    from rich.console import Console

    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.data.standin import write_standin_images
    from resnet_ft.features.featurizer import Backbone, Featurizer

    root = write_standin_images(tmp_path / "images", classes=("a",), per_class=3, min_size=32,
                                max_size=40)
    paths = sorted(root.rglob("*.jpg"))
    featurizer = Featurizer(Backbone("f" * 64, {}, None), Preprocessing(32), "float32",
                            store_root=tmp_path / "store", console=Console(quiet=True))
    import tensorflow as tf

    featurizer._functions[(1, None)] = lambda pixels: tf.constant(np.where(
        np.arange(len(pixels))[:, None, None] == 1, np.nan, 1.0) * np.ones((len(pixels), 1, 4)))
    with pytest.raises(NonFiniteError, match=r"for 1 of 3 file\(s\) \(.*a_0001.jpg: NaN or "
                                             r"infinite outputs\); none of them was stored"):
        featurizer.pooled(paths, 1)
    store = featurizer.store
    store.reload()
    assert store.table(store.keys(paths), 1)[1] == [1]  # the two finite rows are stored


def test_without_the_cache_the_same_checks_hold(flowers, backbone50, broken_backbone,
                                                tmp_path, cli):
    """Online runs: the backbone is refused alike, and the first non-finite loss stops them."""
    common = ("--epochs", 1, "--no-cache", *BASE, "--precision", "float32")
    refused = cli("train", flowers, "--backbone", broken_backbone, "-o", tmp_path / "a",
                  *common)
    assert_one_line_error(refused, "holds NaN or infinity", code=1)
    diverged = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "b", *common,
                   "--lr", 1e30)
    assert_one_line_error(diverged, "non-finite training loss", "epoch 1 (phase 1",
                          "No epoch completed", "--overwrite", code=1)
    assert not (tmp_path / "b" / "model.keras").exists()


def test_a_diverging_rate_stops_the_run_and_keeps_nothing_it_computed(flowers, backbone50,
                                                                      tmp_path, cli):
    run = tmp_path / "run"
    result = cli("train", flowers, "--backbone", backbone50, "-o", run, "--epochs", 2,
                 "--lr", 1e30, "--cache-dir", tmp_path / "cache", *BASE)
    assert_one_line_error(result, "non-finite training loss", "in epoch 1 (phase 1",
                          "lower --lr", code=1)
    assert not (run / "model.keras").exists()
    assert not (run / "history.csv").exists()


def test_divergence_after_good_epochs_keeps_them_and_resume_continues(flowers, backbone50,
                                                                      tmp_path, cli,
                                                                      monkeypatch):
    """The step goes NaN in epoch 2: epoch 1 stays committed, and --resume --lr finishes."""
    import resnet_ft.training.run as run_module

    real = run_module.train_step
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        step = real(*args, **kwargs)

        def wrapped(*batch):
            calls["n"] += 1
            loss, correct = step(*batch)
            return (float("nan") if calls["n"] > 4 else loss), correct  # 4 steps an epoch

        return wrapped

    run = tmp_path / "run"
    args = ("train", flowers, "--backbone", backbone50, "-o", run, "--epochs", 3,
            "--cache-dir", tmp_path / "cache", *BASE, "--precision", "float32")
    monkeypatch.setattr(run_module, "train_step", diverging)
    result = cli(*args)
    assert_one_line_error(result, "non-finite training loss (nan) in epoch 2 (phase 1",
                          "Epochs up to 1 are saved", "--resume --lr NEW_RATE", code=1)
    assert [row["epoch"] for row in _history(run)] == ["1"]
    assert json.loads((run / "state" / "state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(run_module, "train_step", real)
    resumed = cli("train", "-o", run, "--resume", "--lr", 1e-4)
    assert resumed.code == 0, resumed.err
    rows = _history(run)
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert [float(row["lr"]) for row in rows] == [2e-4, 1e-4, 1e-4]  # the lower rate, used


def test_a_head_with_nan_weights_fails_each_file_and_json_stays_valid(trained, tmp_path, cli):
    from resnet_ft.models.files import load_model, read_metadata, save_model

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    model = load_model(run / "model.keras")
    logits = model.get_layer("head").get_layer("head.logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * np.nan, bias])
    save_model(model, run / "model.keras", read_metadata(trained[0] / "model.keras"))
    files = [line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:3]]
    result = cli("predict", run, *files, "--json")
    assert result.code == 1
    entries = json.loads(result.out)  # valid JSON: no NaN anywhere
    assert [set(entry) for entry in entries] == [{"file", "error"}] * 2
    assert all("non-finite probabilities" in entry["error"] for entry in entries)


def test_convert_refuses_non_finite_weights_and_integer_tensors(cli, tmp_path):
    values = random_weights(slim_variable_shapes(50), seed=2)
    name = "resnet_v1_50/block3/unit_2/bottleneck_v1/conv1/weights"
    values[name] = values[name].copy()
    values[name][0, 0, 5, 7] = np.inf
    prefix = tmp_path / "src" / "model.ckpt"
    slim.write(values, prefix)
    assert_convert_fails(cli, tmp_path, prefix, "1 holding NaN or infinity", name)


def test_convert_refuses_a_tensor_stored_as_integers(cli, tmp_path):
    """A safetensors conv1.weight declared I32 with float32's byte count converted silently."""
    from safetensors.numpy import save_file
    from support.torch_reference import LAYERS, ResNet

    state = {key: value.numpy().copy() for key, value in ResNet(LAYERS[50]).state_dict().items()}
    state["conv1.weight"] = state["conv1.weight"].view(np.int32)  # same bytes, declared I32
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    assert_convert_fails(cli, tmp_path, path, "stored in a non-float type",
                         "conv1.weight (int32)")


def test_non_finite_validation_loss_fails_a_fold(tmp_path):
    """Doctor's and the sweep's fold heads: one line naming the fold and the epoch."""
    from resnet_ft.config import make_config
    from resnet_ft.training.crossval.fit import cross_validate

    features = np.ones((12, 2, 2048), np.float32)
    features[3, 0, 7] = np.nan  # the heads trained on sample 3 go NaN
    labels = np.array([0, 1] * 6)
    folds = np.array([0, 1] * 6)
    config = make_config({"epochs": 2, "batch_size": 4, "head_units": 4, "lr": 1e-2,
                          "optimizer": "sgd"})
    with pytest.raises(NonFiniteError, match=r"non-finite validation loss \(nan\) in fold 1 "
                                             r"after epoch 1: the head diverged at lr 0.01"):
        cross_validate(config, 2, features, labels, folds)
