"""Parameter counts are exact integers, per stage and in total."""

from __future__ import annotations

import json

import pytest

from resnet_ft.models.architectures import build_resnet
from resnet_ft.models.families import SLIM
from resnet_ft.models.files import load_backbone
from resnet_ft.models.params import summarize

#: tf-slim ``resnet_v1_50/101/152``: ``resnet_v1_block('block1', base_depth=64,
#: num_units=3, stride=2)``, ... — units per block and the bottleneck width (base_depth).
UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
BASE_DEPTHS = (64, 128, 256, 512)
SLIM_101_BACKBONE = 42_605_504
SLIM_101_TOP = 2048 * 1000 + 1000


def _expected_stage(depth: int, stage: int) -> tuple[int, int]:
    """(weights, BN statistics) of one slim stage, by arithmetic independent of Keras."""
    width, out = BASE_DEPTHS[stage], BASE_DEPTHS[stage] * 4
    c_in = 64 if stage == 0 else BASE_DEPTHS[stage - 1] * 4
    weights = stats = 0
    for unit in range(UNITS[depth][stage]):
        channels_in = c_in if unit == 0 else out
        weights += channels_in * width + 9 * width * width + width * out
        bn_channels = width + width + out
        if unit == 0:  # projection shortcut where channels change
            weights += channels_in * out
            bn_channels += out
        weights += 2 * bn_channels  # gamma, beta
        stats += 2 * bn_channels  # moving mean, variance
    return weights, stats


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_stage_counts_match_arithmetic(depth):
    summary = summarize(build_resnet(SLIM, depth))
    stages = {s.name: s for s in summary.stages}
    assert list(stages) == ["stem", "block1", "block2", "block3", "block4"]
    assert (stages["stem"].trainable, stages["stem"].bn_statistics) == (7 * 7 * 3 * 64 + 128, 128)
    for index in range(4):
        weights, stats = _expected_stage(depth, index)
        stage = stages[f"block{index + 1}"]
        counted = (stage.trainable, stage.non_trainable, stage.bn_statistics)
        assert counted == (weights, stats, stats)


def test_slim_101_backbone_total(backbone101):
    summary = summarize(load_backbone(backbone101))
    assert summary.total == SLIM_101_BACKBONE
    assert summary.bn_statistics == summary.non_trainable == 105_344
    assert summary.trainable == SLIM_101_BACKBONE - 105_344


def test_summary_cli_json(cli, backbone101):
    result = cli("summary", backbone101, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["total"] == SLIM_101_BACKBONE + SLIM_101_TOP
    assert data["non_trainable"] == 105_344
    by_name = {s["name"]: s for s in data["stages"]}
    assert by_name["top"] == {
        "name": "top", "trainable": SLIM_101_TOP, "non_trainable": 0, "bn_statistics": 0,
        "total": SLIM_101_TOP,
    }
    assert sum(s["total"] for s in data["stages"]) == data["total"]


def test_summary_cli_table(cli, backbone101):
    result = cli("summary", backbone101)
    assert result.code == 0, result.err
    for text in ("block3", "26,163,200", "44,654,504", "BN stats"):
        assert text in result.out


def test_summary_missing_model(cli, tmp_path):
    from support.cli import assert_one_line_error

    assert_one_line_error(cli("summary", tmp_path / "none.keras"), "model file not found")
