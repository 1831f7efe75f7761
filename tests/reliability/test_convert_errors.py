"""Bad checkpoints: one ``error:`` line naming the problem, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from support.cli import assert_convert_fails, assert_one_line_error

from resnet_ft.conversion.formats import slim
from resnet_ft.conversion.standin import random_weights, slim_variable_shapes

SCOPE = "resnet_v1_50"


@pytest.fixture(scope="module")
def values50():
    return random_weights(slim_variable_shapes(50), seed=1)


def _write(tmp_path, values, name="model.ckpt"):
    prefix = tmp_path / "src" / name
    slim.write(values, prefix)
    return prefix



def test_missing_path(cli, tmp_path):
    assert_convert_fails(cli, tmp_path, tmp_path / "nope.ckpt", "checkpoint not found", "nope.ckpt")


def test_random_binary_file(cli, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_convert_fails(cli, tmp_path, junk, "cannot read checkpoint", "junk.ckpt")


def test_unknown_format(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert_convert_fails(cli, tmp_path, notes, "unrecognised checkpoint format", "notes.txt")


def test_truncated_data_file(cli, tmp_path, values50):
    prefix = _write(tmp_path, values50)
    data = next(prefix.parent.glob("*.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    assert_convert_fails(cli, tmp_path, prefix, "cannot read variable", "truncated or corrupt")


def test_index_without_data(cli, tmp_path, values50):
    prefix = _write(tmp_path, values50)
    next(prefix.parent.glob("*.data-*")).unlink()
    assert_convert_fails(cli, tmp_path, prefix.with_name("model.ckpt.index"), "cannot read")


def test_missing_variable(cli, tmp_path, values50):
    gone = f"{SCOPE}/block2/unit_1/bottleneck_v1/conv2/weights"
    prefix = _write(tmp_path, {k: v for k, v in values50.items() if k != gone})
    assert_convert_fails(cli, tmp_path, prefix, "1 missing", gone)


def test_wrong_shape(cli, tmp_path, values50):
    name = f"{SCOPE}/block2/unit_1/bottleneck_v1/conv2/weights"
    bad = dict(values50, **{name: np.zeros((3, 3, 128, 64), np.float32)})
    assert_convert_fails(
        cli, tmp_path, _write(tmp_path, bad),
        "1 shape mismatch", f"{name}: expected (3, 3, 128, 128), found (3, 3, 128, 64)",
    )


def test_unexpected_variable(cli, tmp_path, values50):
    extra = f"{SCOPE}/block4/extra/weights"
    prefix = _write(tmp_path, dict(values50, **{extra: np.zeros(3, np.float32)}))
    assert_convert_fails(cli, tmp_path, prefix, "1 unexpected", extra)


def test_depth_mismatch(cli, tmp_path, values50):
    prefix = _write(tmp_path, values50)
    assert_convert_fails(
        cli, tmp_path, prefix, "depth mismatch", "--depth 101", extra=("--depth", 101)
    )


def test_wrong_family(cli, tmp_path):
    prefix = _write(tmp_path, {"vgg_16/conv1/conv1_1/weights": np.zeros((3, 3, 3, 64), "f4")})
    assert_convert_fails(cli, tmp_path, prefix, "not a TF-slim ResNet checkpoint", "vgg_16")


def test_include_top_without_logits(cli, tmp_path, values50):
    prefix = _write(tmp_path, {k: v for k, v in values50.items() if "/logits/" not in k})
    assert_convert_fails(
        cli, tmp_path, prefix, "--include-top", "no classifier", extra=("--include-top",)
    )


def test_output_must_be_keras_file(cli, tmp_path, values50):
    result = cli("convert", _write(tmp_path, values50), "-o", tmp_path / "b.h5")
    assert_one_line_error(result, "must end in .keras")
    assert not (tmp_path / "b.h5").exists()
