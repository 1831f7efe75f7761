"""Structured pruning of the head's hidden Dense layer: fewer units, a genuinely smaller model.

``--prune-head FRACTION`` runs after training, on the best epoch's head, in
rounds (:func:`~resnet_ft.training.plan.plan_pruning`): each round keeps the
hidden units whose outgoing weights have the largest L1 norm (a unit whose
outgoing weights are small moves no class score much), builds a head with
only those units (:func:`~resnet_ft.models.head.keep_units`: columns and rows
removed, not zeroed), and fine-tunes it for ``--prune-epochs`` on the pooled
features of the backbone as it is saved — cached, so a round costs seconds.
The rounds use the run's own step, so a distilled student keeps learning from
its teacher while it is pruned.

Zeroing weights (unstructured magnitude pruning) would save nothing here: a
dense kernel full of zeros is stored and multiplied at full size by Keras,
TensorFlow and TFLite alike. Removing whole units shrinks the kernels.

The run's :func:`~resnet_ft.training.artifacts.finish` writes the unpruned
model and report first (the "before" figures, and what an interrupted pruning
leaves); pruning then replaces only what describes the model — ``model.keras``,
``confusion.png``, ``top_losses.png`` and the report, which gains a ``pruning``
section with units, parameters, file size and accuracy before and after. The
history and its curves are the training's and stay as ``finish`` wrote them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from resnet_ft.models.head import LOGITS, keep_units, spec_of
from resnet_ft.training.artifacts import save_classifier, validation_report
from resnet_ft.training.inputs import Networks, Reader, final_pooled
from resnet_ft.training.loop import Phase, RunContext, new_state, run_phases
from resnet_ft.training.plan import PruneRound
from resnet_ft.training.sources import WithTargets
from resnet_ft.training.step import evaluate, make_optimizer


def outgoing_l1(head: Any) -> np.ndarray:
    """Each hidden unit's contribution: the L1 norm of its weights into the class scores."""
    return np.abs(head.get_layer(LOGITS).get_weights()[0]).sum(axis=1)


def strongest_units(head: Any, units: int) -> np.ndarray:
    """Indices of the ``units`` hidden units with the largest outgoing L1 norm, ascending."""
    return np.sort(np.argsort(-outgoing_l1(head), kind="stable")[:units])


def prune_head(ctx: RunContext, phases: Sequence[Phase], nets: Networks, reader: Reader,
               rounds: Sequence[PruneRound], prepare: Callable[[Phase], None],
               targets: np.ndarray | None, before: dict[str, Any]) -> tuple[dict[str, Any], Phase]:
    """Prune the best head in ``rounds``; write the smaller model and its figures.

    ``before`` is the unpruned model's report (already written). Returns the
    pruned model's report, with a ``pruning`` section, for the caller to write
    as ``metrics.json``, and the phase that computes it (the pruned head on
    the final pooled features).
    """
    best = phases[ctx.state["best_phase"] - 1]
    file_before = ctx.run.model_path.stat().st_size
    params_before, units_before = _parameters(nets, nets.head), _units(nets.head)
    head_before = int(nets.head.count_params())
    pooled = final_pooled(best.plan, best.source, ctx.config, nets, reader)
    source = pooled if targets is None else WithTargets(pooled, targets)
    tuning = dataclasses.replace(ctx, state=new_state(), total_epochs=rounds[-1].phase.last_epoch)
    head, history = nets.head, []
    for prune_round in rounds:
        head = _round(tuning, prune_round, len(rounds), head, source, reader, prepare)
        val_loss, val_accuracy, _ = evaluate(head, source, ctx.y_val)
        history.append({"round": prune_round.number, "units": prune_round.units,
                        "val_loss": val_loss, "val_accuracy": val_accuracy})
    final = Phase(best.plan, head, None, source)
    metrics = _write_pruned(ctx, nets, final)
    metrics["pruning"] = {
        "fraction": ctx.config.prune_head, "criterion": "L1 norm of outgoing weights",
        "units_before": units_before, "units_after": _units(head),
        "parameters_before": params_before, "parameters_after": _parameters(nets, head),
        "head_parameters_before": head_before,
        "head_parameters_after": int(head.count_params()),
        "file_bytes_before": file_before,
        "file_bytes_after": ctx.run.model_path.stat().st_size,
        "accuracy_before": before["accuracy"], "accuracy_after": metrics["accuracy"],
        "val_loss_before": before["val_loss"], "val_loss_after": metrics["val_loss"],
        "rounds": history,
    }
    return metrics, final


def _round(tuning: RunContext, prune_round: PruneRound, count: int, head: Any, source: Any,
           reader: Reader, prepare: Callable[[Phase], None]) -> Any:
    """One round: keep the strongest units, then fine-tune the smaller head."""
    config = tuning.config
    tuning.console.print(f"prune round {prune_round.number}/{count}: {_units(head)} -> "
                         f"{prune_round.units} hidden units")
    smaller = keep_units(head, strongest_units(head, prune_round.units))
    plan = prune_round.phase
    phase = Phase(plan, smaller, make_optimizer(config, plan.learning_rate), source)
    run_phases(tuning, [phase], [_print_epoch], reader.inputs.epoch_views, prepare)
    return smaller


def _print_epoch(ctx: RunContext, phase: Phase, row: dict[str, Any], improved: bool) -> None:
    ctx.console.print(f"  fine-tune epoch {row['epoch']}/{ctx.total_epochs}  loss "
                      f"{row['loss']:.4f}  val_loss {row['val_loss']:.4f}  val_accuracy "
                      f"{row['val_accuracy']:.4f}  {row['seconds']:.1f}s")


def _write_pruned(ctx: RunContext, nets: Networks, final: Phase) -> dict[str, Any]:
    """Save the classifier with the pruned head; its report, confusion matrix and top losses."""
    nets.head = final.model
    save_classifier(ctx, nets)
    return validation_report(ctx, final)


def _units(head: Any) -> int:
    return spec_of(head).units


def _parameters(nets: Networks, head: Any) -> int:
    """Parameters of the saved classifier: backbone (BN statistics included) and head."""
    return int(nets.backbone.count_params() + head.count_params())
