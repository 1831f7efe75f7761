"""Fine-tune a new head on a frozen backbone: data -> features -> head -> run directory.

A run reads as a short story: split the data and write the run files; plan
the inputs (:mod:`~resnet_ft.training.plan`); compute or load the features;
build each phase's model and source; run the epoch loop with its callbacks
(:mod:`~resnet_ft.training.loop`); write the best epoch's model and report
(:mod:`~resnet_ft.training.artifacts`).

Two feature sources feed one training loop:

* cached (default): pooled backbone features are computed once per image and
  view (:mod:`resnet_ft.features`); every epoch is then a pass over small
  arrays. Flip augmentation picks a random view per image per epoch — the
  same distribution as flipping online.
* online (``--no-cache``): the plain tf.data pipeline, decoding and running
  the backbone for every batch of every epoch.

Both call the same train step with the same seeded batch order, view choice
and dropout, so they train the same model.

Resumability: after every epoch the head weights, optimizer state and history
are committed to ``RUN_DIR/state`` (versioned files, then ``state.json`` as
the atomic commit point). ``--resume`` continues from the last completed
epoch; Ctrl-C finishes the current step, saves, and exits 130.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import Sample, Split, make_split, require_every_class
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.errors import InputError
from resnet_ft.features.boundary import BoundaryCache
from resnet_ft.features.identity import backbone_identity, default_cache_dir
from resnet_ft.features.store import FeatureCache
from resnet_ft.models.head import build_head
from resnet_ft.models.precision import policy
from resnet_ft.training.artifacts import finish, report_skipped, save_classifier, write_run_files
from resnet_ft.training.callbacks import default_callbacks
from resnet_ft.training.config import TrainConfig, make_config
from resnet_ft.training.inputs import (
    Networks,
    Reader,
    feature_table,
    head_source,
    load_networks,
    stages_model_and_source,
)
from resnet_ft.training.loop import Interrupted, Phase, RunContext, new_state, run_phases
from resnet_ft.training.plan import Plan, make_plan, plan_inputs
from resnet_ft.training.state import RunState, prepare_run_dir, run_lock
from resnet_ft.training.step import class_weights, learning_rate, make_optimizer, train_step


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    labels: list[str]
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    extracted: int = 0


def train(
    config: TrainConfig | Mapping[str, Any],
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> TrainResult:
    """Run (or resume) one fine-tuning run; write every artifact into ``run_dir``.

    Phase 1 trains the head on pooled features (``epochs`` long, or
    ``head_epochs`` when stages are unfrozen); phase 2 (``--trainable`` other
    than ``head``) trains the unfrozen stages and the head together for
    ``epochs`` more, with cosine decay from ``fine_tune_lr`` after a warm-up.

    Under ``--strategy multi-worker`` worker 0 writes ``run_dir``; worker k
    writes ``<run_dir>.worker-k`` (each machine keeps its own copy).
    ``config`` may be a mapping of option names, validated like a YAML file.
    """
    from resnet_ft.training.distribute import make_strategy, worker_index

    if not isinstance(config, TrainConfig):
        config = make_config(dict(config))

    console = console or Console(stderr=True)
    strategy = make_strategy(config.strategy)  # before any TF op: multi-worker needs that
    run_dir = Path(run_dir)
    if worker_index():
        run_dir = run_dir.with_name(f"{run_dir.name}.worker-{worker_index()}")
    if strategy.num_replicas_in_sync > 1:
        console.print(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas, "
                      f"global batch {config.batch_size * strategy.num_replicas_in_sync}")
    with run_lock(run_dir), strategy.scope():
        return _train(config, run_dir, resume, overwrite, console, strategy)


def _train(config: TrainConfig, run_dir: Path, resume: bool, overwrite: bool,
           console: Console, strategy: Any) -> TrainResult:
    _require_sources(config)
    split = make_split(
        Path(config.data_dir), val_dir=Path(config.val_dir) if config.val_dir else None,
        val_split=config.val_split, seed=config.seed,
    )
    nets = load_networks(config)
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    write_run_files(run_dir, config, split)
    reader = _reader(config, console, strategy)
    _describe(split, reader)
    paths = [s.path for s in split.train + split.val]
    table = feature_table(paths, nets, reader)
    skipped = {str(paths[i]): reason for i, reason in sorted(table.errors.items())}
    report_skipped(skipped, run_dir, console, strict=config.strict)
    train_samples, val_samples = _usable(split, {Path(p) for p in skipped})
    reader.train = [s.path for s in train_samples]
    reader.val = [s.path for s in val_samples]
    ctx = _context(config, run_dir, split, reader, train_samples, val_samples)
    plan = make_plan(config, len(train_samples))
    ctx.total_epochs = plan.total_epochs
    phases = _phases(ctx, plan, nets, reader, head_source(table, len(split.train), nets, reader))
    _resume(ctx, phases, resume)
    weights = class_weights(ctx.y_train, len(split.labels), config.class_weight)

    def prepare(phase: Phase) -> None:
        if not phase.optimizer.built:  # slots made here, not lazily inside a replica
            phase.optimizer.build(phase.model.trainable_variables)
        phase.step = train_step(phase.model, phase.optimizer, weights, config.label_smoothing,
                                strategy)

    callbacks = default_callbacks(ctx, lambda: save_classifier(ctx, nets))
    try:
        run_phases(ctx, phases, callbacks, reader.inputs.epoch_views, prepare)
    except KeyboardInterrupt:
        if ctx.state["epoch"]:
            finish(ctx, phases, nets)
        raise Interrupted(
            f"interrupted; state saved after epoch {ctx.state['epoch']}. Resume with: resnet-ft "
            f"train --config {run_dir / 'config.yaml'} -o {run_dir} --resume"
        ) from None
    metrics = finish(ctx, phases, nets)
    return TrainResult(run_dir, split.labels, ctx.state["history"], metrics, skipped,
                       table.extracted)


def _require_sources(config: TrainConfig) -> None:
    if not config.data_dir:
        raise InputError("no data directory given (DATA_DIR argument or data_dir in --config)")
    if not config.backbone:
        raise InputError("no backbone given (--backbone or backbone in --config)")


def _reader(config: TrainConfig, console: Console, strategy: Any) -> Reader:
    """How this run reads images: the input plan, the feature store and online augmentation."""
    inputs = plan_inputs(config)
    preprocessing = Preprocessing(config.image_size, config.resize)
    cache = None
    if inputs.cached:
        root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        cache = FeatureCache(root, backbone_identity(config.backbone, config.precision),
                             preprocessing)
    augment = None
    if inputs.online_augment:
        from resnet_ft.data.augment import augmentation

        augment = augmentation(inputs.online_augment, config.image_size, config.seed)
    return Reader(preprocessing, inputs, cache, strategy, console, augment)


def _describe(split: Split, reader: Reader) -> None:
    console = reader.console
    if split.ignored:
        console.print(f"ignoring folder(s) without images: {', '.join(split.ignored)}")
    console.print(
        f"{len(split.labels)} classes, {len(split.train)} training and {len(split.val)} "
        f"validation images ({'folders' if split.source == 'folders' else 'seeded split'})"
    )
    if reader.inputs.note:
        console.print(reader.inputs.note)


def _usable(split: Split, bad: set[Path]) -> tuple[list[Sample], list[Sample]]:
    """The split without undecodable files; every class must keep a training image."""
    train = [s for s in split.train if s.path not in bad]
    val = [s for s in split.val if s.path not in bad]
    require_every_class(split.labels, train, "the training set")
    if not val:
        raise InputError("no usable validation images; add images or raise --val-split")
    return train, val


def _context(config: TrainConfig, run_dir: Path, split: Split, reader: Reader,
             train: list[Sample], val: list[Sample]) -> RunContext:
    replicas = reader.strategy.num_replicas_in_sync
    return RunContext(
        config=config, run_dir=run_dir, console=reader.console, labels=split.labels,
        preprocessing=reader.preprocessing, store=RunState(run_dir), state=new_state(),
        y_train=np.array([s.label for s in train]), y_val=np.array([s.label for s in val]),
        total_epochs=0, global_batch=config.batch_size * replicas,
    )


def _phases(ctx: RunContext, plan: Plan, nets: Networks, reader: Reader,
            pooled: Any) -> list[Phase]:
    """Each planned phase with its model, optimizer and source; the head is built here."""
    import keras

    config = ctx.config
    keras.utils.set_random_seed(config.seed)
    with policy(config.precision):
        nets.head = build_head(len(ctx.labels), units=config.head_units, dropout=config.dropout)
    first = plan.phases[0]
    phases = [Phase(first, nets.head, make_optimizer(config, first.learning_rate), pooled)]
    for phase in plan.phases[1:]:
        boundary = (BoundaryCache(reader.cache.base, reader.cache.backbone_id,
                                  reader.preprocessing, config.trainable)
                    if reader.cache is not None else None)
        model, source = stages_model_and_source(config, nets, reader, boundary)
        phases.append(Phase(phase, model, make_optimizer(config, learning_rate(phase)), source))
    return phases


def _resume(ctx: RunContext, phases: list[Phase], resume: bool) -> None:
    """Load the last committed epoch's head, optimizer and history into ``ctx``."""
    state = ctx.store.load() if resume else None
    if state is None:
        return
    current = phases[state.get("phase", 1) - 1]
    ctx.store.restore(state, current.model, current.optimizer)
    ctx.state = state
    ctx.console.print(f"resuming after epoch {state['epoch']}")
