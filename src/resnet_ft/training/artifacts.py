"""What a run leaves behind: the run files up front, the model and reports at the end.

A run directory is self-describing from its first second (``config.yaml``,
``labels.json``, ``split.csv``), so a crashed run can be audited and resumed;
at the end it holds the best epoch's classifier (``model.keras``) and the
validation report (``metrics.json``, ``history.csv``, ``curves.png``,
``confusion.png``, ``top_losses.png``), plus ``skipped.csv`` when files could
not be decoded.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import Split
from resnet_ft.errors import InputError
from resnet_ft.evaluation.metrics import calibration, classification_report
from resnet_ft.evaluation.plots import plot_confusion, plot_curves
from resnet_ft.evaluation.top_losses import plot_top_losses, top_losses
from resnet_ft.models.files import save_model
from resnet_ft.models.head import assemble
from resnet_ft.models.precision import copy_weights
from resnet_ft.models.run_dir import LABELS_FILE, MODEL_FILE, SPLIT_FILE, split_files
from resnet_ft.training.config import TrainConfig
from resnet_ft.training.inputs import Networks
from resnet_ft.training.loop import Phase, RunContext
from resnet_ft.training.state import history_csv
from resnet_ft.training.step import evaluate
from resnet_ft.util.atomic import write_text
from resnet_ft.util.tables import csv_text

#: How many skipped files a ``--strict`` error names before "and N more".
LISTED = 3


def write_run_files(run_dir: Path, config: TrainConfig, split: Split) -> None:
    """The resolved config, the class names and the split: what the run is, before it runs."""
    write_text(run_dir / "config.yaml", config.to_yaml())
    write_text(run_dir / LABELS_FILE, json.dumps(split.labels, indent=2, ensure_ascii=False))
    write_text(run_dir / SPLIT_FILE, split.to_csv())


def report_skipped(skipped: dict[str, str], run_dir: Path, console: Console,
                   strict: bool) -> None:
    """``skipped.csv`` and a console listing; with ``--strict``, a one-line error instead."""
    if not skipped:
        return
    write_text(run_dir / "skipped.csv", csv_text(["file", "reason"], skipped.items()))
    if strict:
        listing = "; ".join(f"{p}: {r}" for p, r in list(skipped.items())[:LISTED])
        more = f"; and {len(skipped) - LISTED} more" if len(skipped) > LISTED else ""
        raise InputError(
            f"--strict: {len(skipped)} file(s) cannot be decoded ({listing}{more}); "
            f"full list in {run_dir / 'skipped.csv'}"
        )
    console.print(f"skipped {len(skipped)} file(s) that cannot be decoded:")
    for path, reason in skipped.items():
        console.print(f"  {path}: {reason}")


def save_classifier(ctx: RunContext, nets: Networks) -> None:
    """Write ``model.keras`` (atomically): the backbone and head as they are now.

    The compute copy's weights go back into the float32 backbone first, so the
    file is float32 whatever the run computed in.
    """
    copy_weights(nets.work, nets.backbone)
    config = ctx.config
    classifier = assemble(nets.backbone, nets.head, ctx.preprocessing.image_size,
                          config.trainable, train_bn=config.train_bn)
    save_model(classifier, ctx.run_dir / MODEL_FILE, {
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
    val_loss, _, probs = evaluate(best.model, best.source, ctx.y_val)
    metrics = classification_report(ctx.y_val, probs, ctx.labels)
    metrics.update(val_loss=val_loss, best_epoch=state["best_epoch"],
                   calibration=calibration(ctx.y_val, probs))
    write_text(ctx.run_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
    write_text(ctx.run_dir / "history.csv", history_csv(state["history"]))
    plot_curves(state["history"], ctx.run_dir / "curves.png")
    plot_confusion(metrics["confusion_matrix"], ctx.labels, ctx.run_dir / "confusion.png")
    write_top_losses(ctx, probs)
    return metrics


def write_top_losses(ctx: RunContext, probs: np.ndarray) -> None:
    """``top_losses.png``: the validation images of largest loss, so mistakes are one click away.

    The validation files are the split's, in order, less those skipped as
    undecodable: the rows ``probs`` belongs to.
    """
    val = usable_files(ctx.run_dir, "val")
    if len(val) != len(ctx.y_val):  # a stale skipped.csv of an earlier attempt: do not guess
        ctx.console.print("top_losses.png not written: cannot match validation files to rows")
        return
    items = top_losses(val, ctx.y_val, probs, ctx.labels)
    plot_top_losses(items, ctx.run_dir / "top_losses.png")


def usable_files(run_dir: Path, subset: str) -> list[Path]:
    """The run's ``train`` or ``val`` files that it used: ``split.csv``'s less ``skipped.csv``'s."""
    try:
        with (run_dir / "skipped.csv").open(newline="", encoding="utf-8") as handle:
            skipped = {row["file"] for row in csv.DictReader(handle)}
    except FileNotFoundError:
        skipped = set()
    return [path for path in split_files(run_dir, subset) if str(path) not in skipped]
