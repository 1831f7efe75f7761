"""``resnet-ft evaluate``: a run's metrics on a labelled class-per-folder set.

Its options are :class:`~resnet_ft.inference.options.InferenceOptions`' fields, as
``predict``'s are.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.common import JSON
from resnet_ft.cli.options import Extra, command, config_layer
from resnet_ft.inference.options import InferenceOptions

EPILOG = ("Examples:\n\n  resnet-ft evaluate runs/flowers data/test\n\n"
          "  resnet-ft evaluate runs/flowers data/test --json -o reports/test\n\n"
          "  resnet-ft evaluate runs/flowers data/test --tta\n\n"
          "  resnet-ft evaluate runs/flowers data/big_test --precision auto")
OPTIONS = ("top_k", "model", "tta", "precision")


@command(InferenceOptions, only=OPTIONS, panels=False, first=(
    Extra("run", Path, typer.Argument(help="Run directory.")),
    Extra("data_dir", Path, typer.Argument(help="Class-per-folder images, same classes.")),
    Extra("out", Path | None, typer.Option("-o", "--out", help="Report folder [RUN/eval/<name>]."),
          None),
), last=(JSON,))
def evaluate(**options: Any) -> None:
    """Accuracy, per-class precision/recall/F1 and confusion matrix of a run on a dataset."""
    from resnet_ft.cli.render import console, metrics_tables, print_json, tta_line
    from resnet_ft.evaluation.evaluate import evaluate as run_evaluate

    result = run_evaluate(options["run"], options["data_dir"], out=options["out"],
                          console=console(stderr=True),
                          **config_layer(options, InferenceOptions))
    for path, reason in result.skipped.items():
        sys.stderr.write(f"warning: skipped {path}: {reason}\n")
    if options["json"]:
        print_json(result.report)
        return
    for table in metrics_tables(result.report):
        console().print(table)
    if options["tta"]:
        console().print(tta_line(result.report, result.cached))
    console().print(f"report written to {result.folder}")
