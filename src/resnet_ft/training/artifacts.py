"""What a run leaves behind: the run files up front, the model and reports at the end.

A run directory is self-describing from its first second (``config.yaml``,
``labels.json``, ``split.csv``), so a crashed run can be audited and resumed;
at the end it holds the best epoch's classifier (``model.keras``) and the
validation report (``metrics.json``, ``history.csv``, ``curves.png``,
``confusion.png``, ``top_losses.png``), plus ``skipped.csv`` when files could
not be decoded. The layout and the file formats are the run directory's
(:mod:`resnet_ft.runs.run`); this module decides when each is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.folders import Split
from resnet_ft.errors import InputError
from resnet_ft.evaluation.metrics import calibration, classification_report
from resnet_ft.evaluation.plots import plot_confusion, plot_curves
from resnet_ft.evaluation.top_losses import plot_top_losses, top_losses
from resnet_ft.models.files import save_model
from resnet_ft.models.head import assemble
from resnet_ft.models.precision import copy_weights
from resnet_ft.runs.run import SKIPPED_FILE, Run
from resnet_ft.training.inputs import Networks
from resnet_ft.training.loop import Phase, RunContext
from resnet_ft.training.step import evaluate

#: How many skipped files a ``--strict`` error names before "and N more".
LISTED = 3


def write_run_files(run: Run, config: TrainConfig, split: Split) -> None:
    """The resolved config, the class names and the split: what the run is, before it runs."""
    run.write_inputs(config, split.labels, split.to_csv())


def report_skipped(skipped: dict[str, str], run: Run, console: Console, strict: bool) -> None:
    """``skipped.csv`` and a console listing; with ``--strict``, a one-line error instead."""
    if not skipped:
        return
    run.write_skipped(skipped)
    if strict:
        listing = "; ".join(f"{p}: {r}" for p, r in list(skipped.items())[:LISTED])
        more = f"; and {len(skipped) - LISTED} more" if len(skipped) > LISTED else ""
        raise InputError(
            f"--strict: {len(skipped)} file(s) cannot be decoded ({listing}{more}); "
            f"full list in {run.file(SKIPPED_FILE)}"
        )
    console.print(f"skipped {len(skipped)} file(s) that cannot be decoded:")
    for path, reason in skipped.items():
        console.print(f"  {path}: {reason}")


def save_classifier(ctx: RunContext, nets: Networks) -> None:
    """Write ``model.keras`` (atomically): the backbone and head as they are now.

    The compute copy's weights go back into the float32 backbone first, so the
    file is float32 whatever the run computed in.
    """
    if nets.changed:
        copy_weights(nets.work, nets.backbone)
    config = ctx.config
    nets.saved = assemble(nets.backbone, nets.head, ctx.preprocessing.image_size,
                          config.trainable, train_bn=config.train_bn)
    save_model(nets.saved, ctx.run.model_path, {
        "kind": "classifier",
        "labels": ctx.labels,
        "preprocessing": ctx.preprocessing.to_dict(),
        "trainable": config.trainable,
        "backbone": nets.metadata,
    })


def finish(ctx: RunContext, phases: Sequence[Phase], nets: Networks) -> dict[str, Any]:
    """Restore the best epoch (with the original backbone if it was in phase 1); write all."""
    state = ctx.state
    best = phases[state["best_phase"] - 1]
    if nets.original is not None and state["best_phase"] == 1:
        nets.work.set_weights(nets.original)
    best.model.load_weights(ctx.store.best_weights(state))
    save_classifier(ctx, nets)
    metrics = validation_report(ctx, best)
    ctx.run.write_history(state["history"])
    plot_curves(state["history"], ctx.run.file("curves.png"))
    return metrics


def validation_report(ctx: RunContext, final: Phase) -> dict[str, Any]:
    """The saved model's validation report: ``metrics.json``, ``confusion.png``, top losses."""
    val_loss, _, probs = evaluate(final.model, final.source, ctx.y_val)
    metrics = classification_report(ctx.y_val, probs, ctx.labels)
    metrics.update(val_loss=val_loss, best_epoch=ctx.state["best_epoch"],
                   calibration=calibration(ctx.y_val, probs))
    ctx.run.write_metrics(metrics)
    plot_confusion(metrics["confusion_matrix"], ctx.labels, ctx.run.file("confusion.png"))
    write_top_losses(ctx, probs)
    return metrics


def write_top_losses(ctx: RunContext, probs: np.ndarray) -> None:
    """``top_losses.png``: the validation images of largest loss, so mistakes are one click away.

    The validation files are the split's, in order, less those skipped as
    undecodable: the rows ``probs`` belongs to.
    """
    val = ctx.run.usable("val")
    if len(val) != len(ctx.y_val):  # a stale skipped.csv of an earlier attempt: do not guess
        ctx.console.print("top_losses.png not written: cannot match validation files to rows")
        return
    items = top_losses(val, ctx.y_val, probs, ctx.labels)
    plot_top_losses(items, ctx.run.file("top_losses.png"))
