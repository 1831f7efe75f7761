"""Fine-tune a new head on a frozen backbone: data -> features -> head -> run directory.

A run reads as a short story: split the data and write the run files; plan
the inputs (:mod:`~resnet_ft.training.plan`); compute or load the features;
build each phase's model and source; run the epoch loop with its callbacks
(:mod:`~resnet_ft.training.loop`); write the best epoch's model and report
(:mod:`~resnet_ft.training.artifacts`); with ``--prune-head``, prune the head
and write the smaller model (:mod:`~resnet_ft.training.prune`).

Distillation (:mod:`~resnet_ft.training.distill`) is this same story with a
:class:`Distillation` plugged in: it may add unlabelled files, gives the
teacher's probabilities per training file and view (the sources then yield
them with the inputs, and the step adds the soft loss), and adds its report.

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

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig, make_config
from resnet_ft.data.folders import Split
from resnet_ft.errors import NonFiniteError
from resnet_ft.features.featurizer import Backbone
from resnet_ft.inference.loaders import keep_classifier
from resnet_ft.runs.run import CONFIG_FILE, Run
from resnet_ft.training.artifacts import finish, save_classifier, write_run_files
from resnet_ft.training.callbacks import default_callbacks
from resnet_ft.training.inputs import (
    Networks,
    Reader,
    head_source,
    load_networks,
    make_reader,
    stages_model_and_source,
)
from resnet_ft.training.loop import Interrupted, Phase, RunContext, run_phases
from resnet_ft.training.plan import Plan, make_plan
from resnet_ft.training.prepare import describe, usable_features
from resnet_ft.training.reject import write_scorer
from resnet_ft.training.sources import WithTargets
from resnet_ft.training.state import prepare_run_dir, run_lock
from resnet_ft.training.step import (
    SoftLoss,
    class_weights,
    evaluate,
    learning_rate,
    make_optimizer,
    train_step,
)

Result = TypeVar("Result")


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    labels: list[str]
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    extracted: int = 0


class Distillation(Protocol):
    """What distilling adds to a run; implemented by :class:`~resnet_ft.training.distill.Teacher`.

    ``unlabeled``: extra training files without labels (read after ``check``).
    """

    loss: SoftLoss
    unlabeled: list[Path]

    def check(self, split: Split) -> None:
        """Refuse a teacher of other classes; drop unlabelled files that are in the split."""

    def targets(self, reader: Reader) -> np.ndarray:
        """Teacher probabilities at the loss's temperature: (len(reader.train), views, C)."""

    def report(self, ctx: RunContext, probs: np.ndarray) -> dict[str, Any]:
        """Student vs teacher on the validation images, given the student's probabilities."""


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
    if not isinstance(config, TrainConfig):
        config = make_config(dict(config))
    return in_strategy(config, run_dir, console or Console(stderr=True),
                       lambda strategy, out, con: run_training(config, out, resume, overwrite,
                                                               con, strategy))


def in_strategy(config: TrainConfig, run_dir: str | Path, console: Console,
                work: Callable[[Any, Path, Console], Result]) -> Result:
    """``work(strategy, run_dir, console)`` in the ``--strategy`` scope, on this worker's dir."""
    from resnet_ft.training.distribute import make_strategy
    from resnet_ft.util.replicas import worker_index

    strategy = make_strategy(config.strategy)  # before any TF op: multi-worker needs that
    run_dir = Path(run_dir)
    if worker_index():
        run_dir = run_dir.with_name(f"{run_dir.name}.worker-{worker_index()}")
    if strategy.num_replicas_in_sync > 1:
        console.print(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas, "
                      f"global batch {config.batch_size * strategy.num_replicas_in_sync}")
    with run_lock(run_dir), strategy.scope():
        return work(strategy, run_dir, console)


def run_training(config: TrainConfig, run_dir: Path, resume: bool, overwrite: bool,
                 console: Console, strategy: Any, distillation: Distillation | None = None,
                 command: str = "train") -> TrainResult:
    """The run's story, inside the strategy scope; ``distillation`` makes it a distill run."""
    config.require_sources()
    asked = config.precision
    config, why = config.resolved()
    split = config.data_split()
    if distillation is not None:
        distillation.check(split)
    unlabeled = distillation.unlabeled if distillation is not None else []
    backbone = Backbone.from_file(config.backbone_file())
    nets = load_networks(config, backbone)
    run = Run(run_dir)
    prepare_run_dir(run, resume=resume, overwrite=overwrite)
    write_run_files(run, config, split)
    if asked == "auto":  # said once every input is accepted: a refused run prints one error
        console.print(f"precision {config.precision}: {why}")
    reader = make_reader(config, backbone, split, console, strategy)
    describe(split, reader, len(unlabeled))
    table, skipped, ctx = usable_features(config, run, split, unlabeled, reader)
    if reader.featurizer.precision != config.precision:  # int8 refused: what computed is kept
        config = ctx.config = dataclasses.replace(config, precision=reader.featurizer.precision)
        write_run_files(run, config, split)
    plan = make_plan(config, len(ctx.y_train))
    ctx.total_epochs = plan.total_epochs
    targets = distillation.targets(reader) if distillation is not None else None
    pooled = head_source(table, len(split.train) + len(unlabeled), reader)
    phases = _phases(ctx, plan, nets, reader, pooled, targets)
    _resume(ctx, phases, resume)
    prepare = _preparer(ctx, strategy, distillation.loss if distillation is not None else None)
    metrics, final = _run(ctx, plan, phases, nets, reader, prepare, targets, command)
    if distillation is not None:
        _, _, probs = evaluate(final.model, final.source, ctx.y_val)
        metrics["distillation"] = distillation.report(ctx, probs)
    write_scorer(ctx, reader, pooled, nets)
    if reader.featurizer.int8 is not None:
        metrics["int8"] = reader.featurizer.int8
    if distillation is not None or plan.prune or reader.featurizer.int8 is not None:
        run.write_metrics(metrics)  # again, with the sections added after the run's report
    keep_classifier(run.model_path, nets.saved)  # the last one written: the run is over
    return TrainResult(run_dir, split.labels, ctx.state["history"], metrics, skipped,
                       table.extracted)


def _run(ctx: RunContext, plan: Plan, phases: list[Phase], nets: Networks, reader: Reader,
         prepare: Callable[[Phase], None], targets: np.ndarray | None,
         command: str) -> tuple[dict[str, Any], Phase]:
    """Train, write the best epoch, prune; the report and the phase that computes the model."""
    from resnet_ft.training.prune import prune_head

    resume = (f"resnet-ft {command} --config {ctx.run.file(CONFIG_FILE)} -o {ctx.run.path} "
              "--resume")
    callbacks = default_callbacks(ctx, lambda: save_classifier(ctx, nets))
    try:
        run_phases(ctx, phases, callbacks, reader.inputs.epoch_views, prepare)
    except KeyboardInterrupt:
        if ctx.state["epoch"]:
            finish(ctx, phases, nets)
        raise Interrupted(f"interrupted; state saved after epoch {ctx.state['epoch']}. "
                          f"Resume with: {resume}") from None
    except NonFiniteError as exc:
        raise NonFiniteError(f"{exc}. {_after_divergence(ctx, resume)}") from None
    metrics = finish(ctx, phases, nets)
    if not plan.prune:
        return metrics, phases[ctx.state["best_phase"] - 1]
    try:
        return prune_head(ctx, phases, nets, reader, plan.prune, prepare, targets, metrics)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while pruning; the unpruned model is saved. "
                          f"Prune it with: {resume}") from None
    except NonFiniteError as exc:
        raise NonFiniteError(f"{exc} while pruning; the unpruned model is saved. Lower --lr "
                             f"or --prune-epochs and prune it with: {resume}") from None


def _after_divergence(ctx: RunContext, resume: str) -> str:
    """What to do after a non-finite loss: the last good epoch is kept for --resume."""
    done = ctx.state["epoch"]
    if not done:
        return ("No epoch completed: lower --lr (or --fine-tune-lr), check the data, and run "
                "again with --overwrite")
    return (f"Epochs up to {done} are saved: lower --lr (or --fine-tune-lr) and resume with: "
            f"{resume} --lr NEW_RATE")


def _phases(ctx: RunContext, plan: Plan, nets: Networks, reader: Reader, pooled: Any,
            targets: np.ndarray | None) -> list[Phase]:
    """Each planned phase with its model, optimizer and source; the head is built here.

    With ``targets`` (distillation) every source also yields the teacher's probabilities.
    """
    import keras

    config = ctx.config
    keras.utils.set_random_seed(config.seed)
    nets.head = config.head_spec(len(ctx.labels)).build()
    sources = [pooled]
    models = [nets.head]
    for _ in plan.phases[1:]:
        model, source = stages_model_and_source(config, nets, reader)
        models.append(model)
        sources.append(source)
    if targets is not None:
        sources = [WithTargets(source, targets) for source in sources]
    return [Phase(phase, model, make_optimizer(config, learning_rate(phase)), source)
            for phase, model, source in zip(plan.phases, models, sources, strict=True)]


def _preparer(ctx: RunContext, strategy: Any, soft: SoftLoss | None) -> Callable[[Phase], None]:
    """Readies a phase to run: optimizer slots, and the step (with the soft loss if distilling)."""
    config = ctx.config
    labelled = ctx.y_train[ctx.y_train >= 0]
    weights = class_weights(labelled, len(ctx.labels), config.class_weight)

    def prepare(phase: Phase) -> None:
        if not phase.optimizer.built:  # slots made here, not lazily inside a replica
            phase.optimizer.build(phase.model.trainable_variables)
        phase.step = train_step(phase.model, phase.optimizer, weights, config.label_smoothing,
                                strategy, soft)

    return prepare


def _resume(ctx: RunContext, phases: list[Phase], resume: bool) -> None:
    """Load the last committed epoch's head, optimizer and history into ``ctx``."""
    state = ctx.store.load() if resume else None
    if state is None:
        return
    current = phases[state.get("phase", 1) - 1]
    ctx.store.restore(state, current.model, current.optimizer)
    ctx.state = state
    ctx.console.print(f"resuming after epoch {state['epoch']}")
