"""The epoch loop: seeded order and views, train, validate, then hand the epoch to callbacks.

What happens after an epoch — recording history, TensorBoard, committing the
resumable state, writing a best-so-far model, printing, early stopping — is a
list of small callbacks (:mod:`resnet_ft.training.callbacks`), so the loop
itself is only the arithmetic of an epoch. Ctrl-C sets a flag that the loop
checks between steps; it then raises ``KeyboardInterrupt`` so the run saves
what it has and exits with 130.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.errors import EXIT_INTERRUPTED, NonFiniteError, ResnetFtError
from resnet_ft.runs.run import Run
from resnet_ft.training.plan import PhasePlan
from resnet_ft.training.state import RunState
from resnet_ft.training.step import evaluate
from resnet_ft.util.progress import track


class Interrupted(ResnetFtError):
    """Ctrl-C during training; the run was saved and can be resumed."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class Phase:
    """A planned phase made concrete: its model, optimizer, input source and step."""

    plan: PhasePlan
    model: Any
    optimizer: Any
    source: Any
    step: Callable[..., tuple[Any, Any]] | None = None


@dataclass
class RunContext:
    """What every part of a running training shares, instead of long argument lists."""

    config: TrainConfig
    run: Run
    console: Console
    labels: list[str]
    preprocessing: Preprocessing
    store: RunState
    state: dict[str, Any]
    y_train: np.ndarray  # -1: an unlabelled image (distillation only)
    y_val: np.ndarray
    total_epochs: int
    global_batch: int
    stop: bool = False


class Callback(Protocol):
    """Called after every completed epoch with the epoch's history row."""

    def __call__(self, ctx: RunContext, phase: Phase, row: dict[str, Any],
                 improved: bool) -> None: ...


def new_state() -> dict[str, Any]:
    """The resumable state of a run that has not completed an epoch."""
    return {"epoch": 0, "phase": 1, "history": [], "best_epoch": 0, "best_phase": 1,
            "best_val_loss": None}


def run_phases(ctx: RunContext, phases: Sequence[Phase], callbacks: Sequence[Callback],
               views: int, prepare: Callable[[Phase], None]) -> None:
    """Train every phase from the state's next epoch; early stopping ends the current phase.

    ``prepare`` readies a phase (optimizer slots, compiled step) only when it
    is about to run, so a resumed run never builds what it has finished.
    """
    with _SigintFlag() as interrupted:
        for phase in phases:
            if ctx.state["epoch"] >= phase.plan.last_epoch:
                continue
            prepare(phase)
            ctx.stop = False
            _run_phase(ctx, phase, callbacks, views, interrupted)


def _run_phase(ctx: RunContext, phase: Phase, callbacks: Sequence[Callback], views: int,
               interrupted: _SigintFlag) -> None:
    ctx.state["phase"] = phase.plan.number
    first = max(ctx.state["epoch"] + 1, phase.plan.first_epoch)
    for epoch in range(first, phase.plan.last_epoch + 1):
        started = time.perf_counter()
        loss, accuracy = _train_epoch(ctx, phase, epoch, views, interrupted)
        val_loss, val_acc, _ = evaluate(phase.model, phase.source, ctx.y_val)
        if not math.isfinite(val_loss):
            raise NonFiniteError(f"non-finite validation loss ({val_loss}) after epoch {epoch} "
                                 f"(phase {phase.plan.number}): the weights diverged")
        row = {"epoch": epoch, "phase": phase.plan.number, "loss": loss, "accuracy": accuracy,
               "val_loss": val_loss, "val_accuracy": val_acc,
               "seconds": round(time.perf_counter() - started, 3),
               "lr": current_learning_rate(phase.optimizer)}
        improved = _record(ctx.state, row)
        for callback in callbacks:
            callback(ctx, phase, row, improved)
        if ctx.stop:
            return


def current_learning_rate(optimizer: Any) -> float:
    """The optimizer's learning rate now: a schedule's value at the steps taken so far.

    A float32 variable; its shortest decimal form (2e-4, not 0.00019999999494757503).
    """
    import keras

    return float(str(np.float32(keras.ops.convert_to_numpy(optimizer.learning_rate))))


def _train_epoch(ctx: RunContext, phase: Phase, epoch: int, views: int,
                 interrupted: _SigintFlag) -> tuple[float, float]:
    """One pass over the training set in the epoch's seeded order; (mean loss, accuracy).

    A batch is the inputs, or the inputs and the teacher's probabilities
    (distillation); accuracy counts labelled images only (unlabelled ones are -1).
    """
    rng = np.random.default_rng([ctx.config.seed, epoch])
    order = rng.permutation(len(ctx.y_train))  # the same on every worker
    flips = rng.integers(0, views, len(ctx.y_train))
    total = correct = 0.0
    seen = labelled = 0
    label = f"epoch {epoch}/{ctx.total_epochs}"
    with track(ctx.console, label, len(ctx.y_train), plain=False) as progress:
        for batch in phase.source.batches(order, flips, ctx.global_batch):
            x, *teacher = batch if isinstance(batch, tuple) else (batch,)
            y = ctx.y_train[order[seen : seen + len(x)]]
            batch_loss, batch_correct = phase.step(x, y, *teacher)
            if not math.isfinite(float(batch_loss)):
                raise NonFiniteError(
                    f"non-finite training loss ({float(batch_loss)}) in epoch {epoch} (phase "
                    f"{phase.plan.number}, images {seen + 1}-{seen + len(x)} of its order)")
            total += float(batch_loss)
            correct += float(batch_correct)
            seen += len(x)
            labelled += int((y >= 0).sum())
            progress.advance(len(x))
            if interrupted.flag:
                raise KeyboardInterrupt
    return total / seen, correct / max(labelled, 1)


def _record(state: dict[str, Any], row: dict[str, Any]) -> bool:
    """Append the epoch to the state; whether it is the best so far (lowest val_loss)."""
    state["history"].append(row)
    improved = state["best_val_loss"] is None or row["val_loss"] < state["best_val_loss"]
    if improved:
        state["best_epoch"], state["best_val_loss"] = row["epoch"], row["val_loss"]
        state["best_phase"] = row["phase"]
    state["epoch"] = row["epoch"]
    return improved


class _SigintFlag:
    """Turns the first Ctrl-C into a flag checked between steps; restores the old handler."""

    def __init__(self) -> None:
        self.flag = False
        self.installed = False
        self.previous: Any = None

    def __enter__(self) -> _SigintFlag:
        self.previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        except ValueError:  # not the main thread: keep default behaviour
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: Any) -> None:
        self.flag = True
