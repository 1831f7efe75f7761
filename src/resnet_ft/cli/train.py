"""``resnet-ft train``: its options are generated from :class:`TrainConfig`'s fields.

Every config field becomes an option (:mod:`resnet_ft.cli.options`), so the CLI can
never drift from the config; ``distill`` is generated the same way from
:class:`DistillConfig` (:data:`RUN_OPTIONS`, :func:`resolve_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.options import Extra, command, config_layer
from resnet_ft.config import TrainConfig, make_config

EPILOG = (
    "Examples:\n\n"
    "  resnet-ft train flower_photos --backbone backbone.keras -o runs/flowers\n\n"
    "  resnet-ft train --config examples/flowers/config.yaml -o runs/flowers --epochs 5\n\n"
    "  resnet-ft train --config runs/flowers/config.yaml -o runs/flowers --resume"
)
#: Options of the command that are not config fields: where to write and how.
RUN_OPTIONS = (
    Extra("out", Path, typer.Option("-o", "--out", help="Run directory to write.")),
    Extra("config", Path | None, typer.Option(help="YAML file with any of these options."), None),
    Extra("resume", bool, typer.Option(help="Continue an interrupted run."), False),
    Extra("overwrite", bool, typer.Option(help="Replace a non-empty run directory."), False),
)


def resolve_config(options: dict[str, Any], kind: type[TrainConfig] = TrainConfig) -> Any:
    """The run's config: ``--config`` (or, resuming, the run's own config.yaml), then the CLI."""
    from resnet_ft.config import load_yaml
    from resnet_ft.runs.run import Run

    out, config, resume = options["out"], options["config"], options["resume"]
    layers = [load_yaml(config)] if config else []
    if resume and not config:
        layers = [Run(out).config_layer()]
    return make_config(*layers, config_layer(options, kind), kind=kind)


@command(TrainConfig, first=RUN_OPTIONS[:1], last=RUN_OPTIONS[1:])
def train(**options: Any) -> None:
    """Fine-tune a new head on a frozen backbone over a class-per-folder image set."""
    from resnet_ft.cli.render import console
    from resnet_ft.training.run import train as run_train

    result = run_train(resolve_config(options), options["out"], resume=options["resume"],
                       overwrite=options["overwrite"], console=console())
    print_result(result)


def print_result(result: Any) -> None:
    """The closing line: best epoch, its accuracy and loss, where the model is."""
    from resnet_ft.cli.render import console

    metrics = result.metrics
    console().print(
        f"best epoch {metrics['best_epoch']}: val_accuracy {metrics['accuracy']:.4f}, "
        f"val_loss {metrics['val_loss']:.4f}; model written to {result.run_dir / 'model.keras'}"
    )
    if "pruning" in metrics:
        console().print(pruning_line(metrics["pruning"]))


def pruning_line(report: dict[str, Any]) -> str:
    """Hidden units, parameters, file size and accuracy before -> after pruning."""
    return (f"pruned head: {report['units_before']} -> {report['units_after']} hidden units, "
            f"{report['parameters_before']:,} -> {report['parameters_after']:,} parameters, "
            f"model.keras {report['file_bytes_before'] / 1e6:.1f} -> "
            f"{report['file_bytes_after'] / 1e6:.1f} MB, val_accuracy "
            f"{report['accuracy_before']:.4f} -> {report['accuracy_after']:.4f}")
