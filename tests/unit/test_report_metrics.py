"""Calibration (reliability bins, ECE) and the top-loss ranking, on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from resnet_ft.evaluation.metrics import calibration
from resnet_ft.evaluation.top_losses import top_losses


def test_calibration_bins_and_ece():
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.28, 0.72], [0.5, 0.5]])
    truth = np.array([0, 1, 1, 1])  # right, wrong, right, wrong (a tie predicts class 0)
    result = calibration(truth, probs)
    counts = [b["count"] for b in result["bins"]]
    assert counts == [0, 0, 0, 0, 1, 0, 0, 1, 1, 1]  # 0.5 is in (0.4, 0.5]
    filled = [b for b in result["bins"] if b["count"]]
    assert [b["confidence"] for b in filled] == pytest.approx([0.5, 0.72, 0.85, 0.95])
    assert [b["accuracy"] for b in filled] == [0.0, 1.0, 0.0, 1.0]
    # ECE = mean |accuracy - confidence| over images (one image per bin here)
    assert result["ece"] == pytest.approx((0.5 + 0.28 + 0.85 + 0.05) / 4)
    assert result["bins"][0]["lower"] == 0.0 and result["bins"][-1]["upper"] == 1.0


def test_calibration_of_a_perfectly_calibrated_bin_is_zero():
    probs = np.array([[0.75, 0.25]] * 4)
    assert calibration(np.array([0, 0, 0, 1]), probs)["ece"] == pytest.approx(0.0)


def test_top_losses_rank_by_loss_of_the_true_class():
    probs = np.array([[0.9, 0.1, 0.0],   # right, loss -log 0.9
                      [0.2, 0.7, 0.1],   # wrong, loss -log 0.2
                      [0.0, 1.0, 0.0],   # wrong with p(true) = 0: clipped at 1e-7
                      [0.2, 0.1, 0.7],   # wrong, loss -log 0.2 (tie: after image 1)
                      [0.4, 0.35, 0.25]])  # right but unsure
    truth = np.array([0, 0, 2, 0, 0])
    paths = [Path(f"img{i}.jpg") for i in range(5)]
    items = top_losses(paths, truth, probs, ["a", "b", "c"], n=4)
    assert [i.index for i in items] == [2, 1, 3, 4]
    assert items[0].loss == pytest.approx(-math.log(1e-7))
    assert (items[0].true, items[0].predicted, items[0].probability) == ("c", "b", 1.0)
    assert items[1].p_true == pytest.approx(0.2) and items[1].wrong
    assert not items[3].wrong and items[3].loss == pytest.approx(-math.log(0.4))
