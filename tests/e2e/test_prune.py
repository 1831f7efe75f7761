"""``--prune-head``: structured pruning of the hidden Dense layer, a genuinely smaller model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from support.cli import SMALL, assert_one_line_error

from resnet_ft.config import make_config
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.models.head import build_head, keep_units
from resnet_ft.runs.run import load_classifier
from resnet_ft.training.plan import make_plan
from resnet_ft.training.prune import strongest_units

#: The slim ResNet-50 stand-in's parameters (BN statistics included): the 101's
#: 42,605,504 that docs/commands/summary.md states, less block3's units 7 to 23.
BACKBONE = 23_561_152


def _head_with(hidden_kernel, hidden_bias, out_kernel, out_bias):
    head = build_head(out_kernel.shape[1], units=hidden_kernel.shape[1], dropout=0.0)
    head.get_layer("head.dense").set_weights([hidden_kernel, hidden_bias])
    head.get_layer("head.logits").set_weights([out_kernel, out_bias])
    return head


def test_the_strongest_units_by_outgoing_l1_are_kept():
    rng = np.random.default_rng(0)
    out = np.zeros((6, 3), np.float32)
    out[:, 0] = [0.1, -3.0, 0.5, 2.0, -0.2, 1.0]  # L1 per unit: 0.1 3 0.5 2 0.2 1
    head = _head_with(rng.normal(size=(2048, 6)).astype(np.float32), np.zeros(6, np.float32),
                      out, np.zeros(3, np.float32))
    assert strongest_units(head, 3).tolist() == [1, 3, 5]
    assert strongest_units(head, 1).tolist() == [1]


def test_a_pruned_head_computes_the_old_head_with_those_units_silenced():
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(0, 0.05, (2048, 16)), rng.normal(0, 0.1, 16)
    w2, b2 = rng.normal(0, 0.5, (16, 4)), rng.normal(0, 0.1, 4)
    head = _head_with(*(a.astype(np.float32) for a in (w1, b1, w2, b2)))
    keep = np.array([0, 3, 4, 9, 15])
    smaller = keep_units(head, keep)
    assert smaller.get_layer("head.dense").kernel.shape == (2048, 5)
    assert smaller.get_layer("head.logits").kernel.shape == (5, 4)
    x = rng.normal(0, 1, (7, 2048))
    mask = np.zeros(16)
    mask[keep] = 1
    expected = np.maximum(x @ w1 + b1, 0) * mask @ w2 + b2  # the head's output: logits
    np.testing.assert_allclose(np.asarray(smaller(x.astype(np.float32))), expected, rtol=1e-4,
                               atol=1e-6)


def test_rounds_remove_equal_shares_until_the_fraction_is_reached():
    config = make_config({"data_dir": "d", "backbone": "b", "head_units": 1024,
                          "prune_head": 0.5, "prune_rounds": 4, "prune_epochs": 3, "lr": 0.01})
    rounds = make_plan(config, 100).prune
    assert [r.units for r in rounds] == [896, 768, 640, 512]
    assert [(r.phase.first_epoch, r.phase.last_epoch) for r in rounds] == [
        (1, 3), (4, 6), (7, 9), (10, 12)]
    assert {r.phase.learning_rate for r in rounds} == {0.01}
    # more rounds than units to remove: rounds that would remove nothing are dropped
    few = make_config({"head_units": 4, "prune_head": 0.5, "prune_rounds": 4})
    assert [r.units for r in make_plan(few, 10).prune] == [3, 2]
    assert make_plan(make_config({}), 10).prune == ()


def test_a_fraction_that_removes_no_unit_is_refused(cli, tmp_path):
    result = cli("train", tmp_path, "--backbone", tmp_path / "b.keras", "-o", tmp_path / "run",
                 "--head-units", 4, "--prune-head", 0.1)
    assert_one_line_error(result, "prune_head 0.1 removes no unit of a 4-unit head")


def test_train_prune_half_of_the_head(trained, flowers, backbone50, cli, tmp_path,
                                      monkeypatch):
    _, cache = trained  # the same images and settings: features come from the cache
    run = tmp_path / "pruned"
    import resnet_ft.training.run as training_run

    finished = []  # the run's report is written once; pruning replaces only what it changes
    monkeypatch.setattr(training_run, "finish",
                        lambda *a, _f=training_run.finish: finished.append(1) or _f(*a))
    result = cli("train", flowers, "--backbone", backbone50, "-o", run, "--epochs", 2,
                 "--val-split", 0.25, "--cache-dir", cache, "--head-units", 64,
                 "--prune-head", 0.5, "--prune-rounds", 2, "--prune-epochs", 1, *SMALL)
    assert result.code == 0, result.err
    console = result.out
    assert "extracting features" not in console
    assert len(finished) == 1
    with open(run / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]  # training's

    head = 2048 * 32 + 32 + 32 * 5 + 5  # Dense(2048 -> 32) + Dense(32 -> 5)
    result = cli("summary", run, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["trainable"] == head
    assert summary["total"] == BACKBONE + head
    model, _ = load_classifier(run)
    assert model.get_layer("head").get_layer("head.dense").kernel.shape == (2048, 32)
    assert model.get_layer("head").get_layer("head.logits").kernel.shape == (32, 5)

    metrics = json.loads((run / "metrics.json").read_text())
    report = metrics["pruning"]
    assert (report["units_before"], report["units_after"]) == (64, 32)
    assert report["parameters_after"] == BACKBONE + head
    assert report["parameters_before"] - report["parameters_after"] == (2048 + 1 + 5) * 32
    assert report["head_parameters_after"] == head
    assert report["file_bytes_after"] == (run / "model.keras").stat().st_size
    assert report["file_bytes_after"] < report["file_bytes_before"]
    assert report["accuracy_after"] == metrics["accuracy"]
    assert [r["units"] for r in report["rounds"]] == [48, 32]
    assert (f"pruned head: 64 -> 32 hidden units, {report['parameters_before']:,} -> "
            f"{BACKBONE + head:,} parameters") in console


def _val(run):
    with open(run / "split.csv", newline="") as handle:
        return [(row["file"], row["label"]) for row in csv.DictReader(handle)
                if row["subset"] == "val"]


def test_pruning_after_fine_tuning_stages_uses_the_fine_tuned_features(
        flowers, backbone50, cli, tmp_path):
    """Best epoch in phase 2: the pruned head is tuned on what the saved backbone computes."""
    run = tmp_path / "ft"
    result = cli("train", flowers, "--backbone", backbone50, "-o", run, "--trainable",
                 "block4", "--head-epochs", 0, "--epochs", 1, "--fine-tune-lr", 1e-3,
                 "--val-split", 0.25, "--cache-dir", tmp_path / "cache", "--head-units", 16,
                 "--prune-head", 0.5, "--prune-rounds", 1, "--prune-epochs", 1, *SMALL)
    assert result.code == 0, result.err
    metrics = json.loads((run / "metrics.json").read_text())
    files, labels = zip(*_val(run), strict=True)
    predictor = load_predictor(run)
    probs = np.stack([p for _, p, _ in predictor.probabilities([Path(f) for f in files])])
    truth = np.array([predictor.labels.index(name) for name in labels])
    loss = -np.mean(np.log(probs[np.arange(len(truth)), truth]))
    # the report's figures come from the pooled features of the cached (float16) boundary
    assert metrics["val_loss"] == pytest.approx(loss, rel=1e-3)
    assert metrics["pruning"]["units_after"] == 8
