"""The training plan is pure data decided from the config: tested without running a model."""

from __future__ import annotations

import pytest

from resnet_ft.config import make_config
from resnet_ft.training.plan import InputPlan, PhasePlan, make_plan, plan_inputs


def config(**options):
    return make_config({"data_dir": "data", "backbone": "b.keras", **options})


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # default: flips from the cache, a random one of two cached views per epoch
        ({}, InputPlan(cached=True, views=2, epoch_views=2, online_augment=())),
        ({"augment": "none"}, InputPlan(cached=True, views=1, epoch_views=1, online_augment=())),
        # --no-cache with flips only: flips drawn per epoch exactly as the cached path draws
        ({"cache": False}, InputPlan(cached=False, views=1, epoch_views=2, online_augment=())),
        ({"cache": False, "augment": "none"},
         InputPlan(cached=False, views=1, epoch_views=1, online_augment=())),
        # pixel-changing augmentation: online, all of it (flip included) as Keras layers
        ({"augment": "flip,rotate"},
         InputPlan(cached=False, views=1, epoch_views=1, online_augment=("flip", "rotate"),
                   note="augmentations flip, rotate change pixels every epoch: running the "
                        "backbone online (only flip can be cached)")),
        ({"augment": "color", "cache": False},
         InputPlan(cached=False, views=1, epoch_views=1, online_augment=("color",))),
    ],
)
def test_inputs(options, expected):
    assert plan_inputs(config(**options)) == expected


def test_head_only_is_one_phase_of_all_epochs_at_constant_lr():
    plan = make_plan(config(epochs=7, lr=1e-3), train_size=100)
    assert plan.phases == (PhasePlan(1, 1, 7, "pooled", 1e-3),)
    assert not plan.phases[0].cosine
    assert plan.total_epochs == 7


def test_unfreezing_adds_a_cosine_phase_after_the_head_epochs():
    # 3 epochs x ceil(50 / 16) = 4 steps -> 12 steps, 10 % warm-up = 1, decay over 11
    plan = make_plan(config(trainable="block4", head_epochs=2, epochs=3, lr=1e-3,
                            batch_size=16), train_size=50)
    assert plan.phases == (
        PhasePlan(1, 1, 2, "pooled", 1e-3),
        PhasePlan(2, 3, 5, "boundary", 1e-4, warmup_steps=1, decay_steps=11),
    )
    assert plan.phases[1].cosine
    assert plan.total_epochs == 5


def test_online_unfreezing_feeds_pixels_and_fine_tune_lr_wins():
    plan = make_plan(config(trainable="all", cache=False, head_epochs=0, epochs=10,
                            fine_tune_lr=3e-5, batch_size=10), train_size=1000)
    first, second = plan.phases
    assert (first.first_epoch, first.last_epoch, first.inputs) == (1, 0, "pixels")
    # 10 x 100 steps: warm-up 100, decay 900
    assert second == PhasePlan(2, 1, 10, "pixels", 3e-5, warmup_steps=100, decay_steps=900)
