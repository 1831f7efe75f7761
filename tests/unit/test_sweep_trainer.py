"""The sweep's compiled fold trainer computes what ``train``'s loop computes, to float32 rounding.

The reference is :mod:`resnet_ft.training.crossval.exact`: ``train``'s own loop, head, optimizer and
step on in-memory features (tests/e2e/test_sweep.py shows ``train`` reproduces it). Folds of
unequal size exercise separate stacks and short last batches; the settings cover dropout,
label smoothing, class weights, weight decay, Adam, SGD and early stopping.
"""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.config import make_config
from resnet_ft.training.crossval.exact import exact_cross_validate
from resnet_ft.training.crossval.fit import HeadTrainer, cross_validate, out_of_fold

SETTINGS = [
    {"optimizer": "adam", "dropout": 0.3, "label_smoothing": 0.1, "class_weight": "balanced",
     "weight_decay": 1e-3, "lr": 1e-3, "epochs": 4},
    {"optimizer": "sgd", "dropout": 0.0, "lr": 1e-2, "epochs": 5, "early_stopping": 1},
    {"head": "linear", "optimizer": "adamw", "dropout": 0.2, "weight_decay": 1e-2, "lr": 3e-3,
     "epochs": 4},
]


def _data():
    """40 samples of 3 separable classes, 2 views; folds of 13 and 27 samples."""
    rng = np.random.default_rng(0)
    labels = np.array([0] * 18 + [1] * 12 + [2] * 10)
    centres = rng.normal(size=(3, 2048)).astype(np.float32)
    features = (0.04 * centres[labels][:, None] + rng.normal(size=(40, 2, 2048))).astype(np.float32)
    folds = np.where(np.arange(40) % 3 == 0, 0, 1)
    return features, labels, folds


@pytest.mark.parametrize("settings", SETTINGS, ids=["adam", "sgd", "linear-adamw"])
def test_fold_trainer_matches_train_loop(settings, execution):
    features, labels, folds = _data()
    config = make_config({"data_dir": "d", "backbone": "b", "batch_size": 8, "head_units": 16,
                          "seed": 3, **settings})
    reference = exact_cross_validate(config, 3, features, labels, folds)
    fits = cross_validate(config, 3, features, labels, folds, trainer=HeadTrainer())
    for fit, expected in zip(fits, reference, strict=True):
        assert fit.best_epoch == expected.best_epoch
        assert fit.val_accuracy == expected.val_accuracy
        assert fit.val_loss == pytest.approx(expected.val_loss, rel=1e-5)
        np.testing.assert_allclose(fit.probs, expected.probs, atol=1e-5)
    assert out_of_fold(fits, folds, 3).shape == (40, 3)


def test_hook_sees_every_epoch_and_can_stop_training():
    features, labels, folds = _data()
    config = make_config({"data_dir": "d", "backbone": "b", "batch_size": 8, "head_units": 16,
                          "epochs": 6})
    seen = []

    def hook(epoch, fits):
        seen.append((epoch, [f.best_epoch for f in fits]))
        if epoch == 2:
            raise StopIteration

    with pytest.raises(StopIteration):
        cross_validate(config, 3, features, labels, folds, hook)
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert all(1 <= best <= epoch for epoch, bests in seen for best in bests)


def test_the_search_space_draws_a_head_kind_and_units_only_for_a_hidden_layer():
    """A trial of the linear head has no units to draw; an mlp trial draws them."""
    import optuna

    from resnet_ft.tuning.space import suggest

    kinds = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(12):
        trial = study.ask()
        params = suggest(trial)
        kinds.add(params["head"])
        assert ("head_units" in params) == (params["head"] == "mlp")
        study.tell(trial, 0.0)
    assert kinds == {"mlp", "linear"}
