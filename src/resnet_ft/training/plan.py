"""What a training run will do, decided from its config alone, before TensorFlow runs anything.

Every choice that used to hide in ``if``s across the training code is made
here, once, as plain data: where the inputs come from (the feature cache or
the image files every epoch), how many views per image exist and how many an
epoch draws from, which augmentations run online, and which phases train
what, for how long, at which learning rate; and, with ``--prune-head``, how
many hidden units each pruning round keeps. The plan is pure — it can be
printed, compared and unit-tested without building a model — and the rest of
:mod:`resnet_ft.training` only carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnet_ft.config import TrainConfig

#: Share of phase 2's steps spent warming the learning rate up from 0.
WARMUP_SHARE = 10


@dataclass(frozen=True)
class InputPlan:
    """Where each epoch's inputs come from.

    ``cached``: pooled features (and, in phase 2, the frozen stages' output)
    are computed once per image and view and read back every epoch. Otherwise
    images are decoded and run through the backbone every epoch ("online").
    ``views``: views per image in the cache (2 = original and mirror).
    ``epoch_views``: how many views an epoch draws one from, per image; a
    random mirror per image per epoch is the same distribution whether the
    mirror was cached or is made online.
    ``online_augment``: augmentations applied to pixels online (empty: none).
    ``note``: why the backbone runs online although caching was asked for.
    """

    cached: bool
    views: int
    epoch_views: int
    online_augment: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class PhasePlan:
    """One stretch of training.

    Phase 1 trains the head on pooled features (``inputs="pooled"``) at a
    constant learning rate. Phase 2 (``--trainable`` other than ``head``)
    trains the unfrozen stages and the head from the frozen stages' output
    (``inputs="boundary"``) with a linear warm-up to ``learning_rate`` over
    ``warmup_steps`` followed by cosine decay over ``decay_steps``. Online runs
    feed pixels to both (``inputs="pixels"``).
    """

    number: int
    first_epoch: int
    last_epoch: int
    inputs: str
    learning_rate: float
    warmup_steps: int = 0
    decay_steps: int = 0

    @property
    def cosine(self) -> bool:
        """Whether the learning rate follows warm-up plus cosine decay (else constant)."""
        return self.decay_steps > 0


@dataclass(frozen=True)
class PruneRound:
    """One round of structured head pruning: keep ``units`` hidden units, then fine-tune.

    ``phase`` trains the pruned head on pooled features at the head's learning
    rate; its epochs continue the numbering of the previous round (seeds differ).
    """

    number: int
    units: int
    phase: PhasePlan


@dataclass(frozen=True)
class Plan:
    """The whole run: inputs, phases, and the pruning rounds after them (none by default)."""

    inputs: InputPlan
    phases: tuple[PhasePlan, ...]
    prune: tuple[PruneRound, ...] = ()

    @property
    def total_epochs(self) -> int:
        """Epochs over all phases (what the progress line counts to)."""
        return self.phases[-1].last_epoch


def plan_inputs(config: TrainConfig) -> InputPlan:
    """Cached or online inputs, views per image, and the online augmentations.

    Only flips can be cached (two fixed views); any other augmentation changes
    the pixels every epoch, so the backbone must run online.
    """
    flips = "flip" in config.augment
    if config.cache and config.cacheable:
        views = 2 if flips else 1
        return InputPlan(cached=True, views=views, epoch_views=views, online_augment=())
    note = ""
    if config.cache:
        note = (f"augmentations {', '.join(config.augment)} change pixels every epoch: "
                "running the backbone online (only flip can be cached)")
    if config.augment == ("flip",):  # flips drawn per epoch exactly as the cached path does
        return InputPlan(cached=False, views=1, epoch_views=2, online_augment=(), note=note)
    return InputPlan(cached=False, views=1, epoch_views=1, online_augment=config.augment,
                     note=note)


def plan_phases(config: TrainConfig, train_size: int, *, cached: bool) -> tuple[PhasePlan, ...]:
    """Phase 1 (head) and, when stages are unfrozen, phase 2 (stages + head)."""
    unfreeze = config.trainable != "head"
    head_epochs = config.head_epochs if unfreeze else config.epochs
    phase1 = PhasePlan(1, 1, head_epochs, "pooled" if cached else "pixels", config.lr)
    if not unfreeze:
        return (phase1,)
    steps = config.epochs * -(-train_size // config.batch_size)
    warmup = max(1, steps // WARMUP_SHARE)
    phase2 = PhasePlan(2, head_epochs + 1, head_epochs + config.epochs,
                       "boundary" if cached else "pixels", config.phase2_lr,
                       warmup_steps=warmup, decay_steps=max(steps - warmup, 1))
    return (phase1, phase2)


def plan_pruning(config: TrainConfig) -> tuple[PruneRound, ...]:
    """Rounds that remove ``prune_head`` of the hidden units in equal shares.

    Removing a share at a time and letting the remaining units adapt loses less
    accuracy than removing them all at once. Rounds that would remove
    nothing (more rounds than units to remove) are dropped.
    """
    units, epochs = config.head_units, config.prune_epochs
    removed = round(units * config.prune_head)
    kept = [units - round(removed * r / config.prune_rounds)
            for r in range(1, config.prune_rounds + 1)]
    kept = sorted(set(kept) - {units}, reverse=True)
    return tuple(PruneRound(n, k, PhasePlan(n, (n - 1) * epochs + 1, n * epochs, "pooled",
                                            config.lr))
                 for n, k in enumerate(kept, start=1))


def make_plan(config: TrainConfig, train_size: int) -> Plan:
    """The plan for ``config`` on a training set of ``train_size`` usable images."""
    inputs = plan_inputs(config)
    return Plan(inputs, plan_phases(config, train_size, cached=inputs.cached),
                plan_pruning(config))
