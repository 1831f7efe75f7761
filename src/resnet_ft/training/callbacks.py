"""What happens after each epoch, one small callable each, in the order the loop calls them.

1. :func:`commit_state` — head weights, optimizer state and history to
   ``RUN_DIR/state`` (the resume point), and ``history.csv``.
2. :class:`BestModel` — a usable best-so-far ``model.keras`` early in long runs.
3. :class:`TensorBoard` — the epoch's scalars under ``RUN_DIR/logs``.
4. :func:`print_epoch` — one console line per epoch.
5. :class:`EarlyStopping` — ends the phase after N epochs without improvement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_ft.training.loop import Callback, Phase, RunContext

#: Seconds between best-so-far model.keras writes during training.
MODEL_SAVE_INTERVAL = 60.0
SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy")


def commit_state(ctx: RunContext, phase: Phase, row: dict[str, Any], improved: bool) -> None:
    """Make the epoch durable: ``--resume`` continues after it, even after kill -9."""
    ctx.store.commit(row["epoch"], phase.model, phase.optimizer, ctx.state, best=improved)
    ctx.run.write_history(ctx.state["history"])


class BestModel:
    """Writes ``model.keras`` when an epoch improves, at most once per ``interval`` seconds.

    A full-model write costs seconds, so short runs write the model once, at
    the end, while long runs always have a recent best model on disk.
    """

    def __init__(self, save: Callable[[], None], interval: float = MODEL_SAVE_INTERVAL) -> None:
        self.save, self.interval = save, interval
        self.last = time.monotonic()

    def __call__(self, ctx: RunContext, phase: Phase, row: dict[str, Any],
                 improved: bool) -> None:
        if improved and time.monotonic() - self.last >= self.interval:
            self.save()
            self.last = time.monotonic()


class TensorBoard:
    """Loss and accuracy per epoch, for ``tensorboard --logdir RUN_DIR/logs``."""

    def __init__(self, run_dir: Path) -> None:
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    def __call__(self, ctx: RunContext, phase: Phase, row: dict[str, Any],
                 improved: bool) -> None:
        import tensorflow as tf

        with self.writer.as_default(step=row["epoch"]):
            for key in SCALARS:
                tf.summary.scalar(key, row[key])
        self.writer.flush()


def print_epoch(ctx: RunContext, phase: Phase, row: dict[str, Any], improved: bool) -> None:
    """``epoch 3/20 (phase 1)  loss ...  val_accuracy ...  1.2s  *`` (``*``: best so far)."""
    ctx.console.print(
        f"epoch {row['epoch']}/{ctx.total_epochs} (phase {row['phase']})  "
        f"loss {row['loss']:.4f}  accuracy {row['accuracy']:.4f}  "
        f"val_loss {row['val_loss']:.4f}  val_accuracy {row['val_accuracy']:.4f}  "
        f"{row['seconds']:.1f}s" + ("  *" if improved else "")
    )


class EarlyStopping:
    """Stops the phase after ``patience`` epochs without a lower val_loss (0: never)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def __call__(self, ctx: RunContext, phase: Phase, row: dict[str, Any],
                 improved: bool) -> None:
        if self.patience and row["epoch"] - ctx.state["best_epoch"] >= self.patience:
            ctx.console.print(f"early stopping: no val_loss improvement in "
                              f"{self.patience} epochs")
            ctx.stop = True


def default_callbacks(ctx: RunContext, save_model: Callable[[], None]) -> list[Callback]:
    """The callbacks every training run uses, in order."""
    return [commit_state, BestModel(save_model), TensorBoard(ctx.run.path), print_epoch,
            EarlyStopping(ctx.config.early_stopping)]
