"""``resnet-ft predict``: classify image files with a trained run (or any model that loads).

Its options are :class:`~resnet_ft.inference.options.InferenceOptions`' fields, as
``evaluate``'s are, so the two commands share names, defaults and checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.common import JSON, usage
from resnet_ft.cli.options import Extra, command, config_layer
from resnet_ft.inference.options import InferenceOptions

EPILOG = ("Examples:\n\n  resnet-ft predict runs/flowers photo.jpg\n\n"
          "  resnet-ft predict runs/flowers 'photos/*.jpg' --top-k 3 --json\n\n"
          "  resnet-ft predict runs/flowers photo.jpg --tta --explain heatmaps\n\n"
          "  resnet-ft predict runs/flowers photos/ --precision auto --csv\n\n"
          "  resnet-ft predict runs/flowers photos/ --reject\n\n"
          "  resnet-ft predict runs/flowers photo.jpg --model flowers.onnx\n\n"
          "  resnet-ft predict backbone.keras cat.jpg --labels imagenet_labels.txt")
OPTIONS = ("top_k", "batch_size", "labels", "model", "tta", "precision", "reject")


@command(InferenceOptions, only=OPTIONS, panels=False, first=(
    Extra("run", Path, typer.Argument(help="Run directory (or an --include-top backbone).")),
    Extra("images", list[str], typer.Argument(help="Image files, directories or globs.")),
), last=(
    JSON,
    Extra("csv", bool, typer.Option("--csv", help="Print CSV rows."), False),
    Extra("explain", Path | None, typer.Option(
        help="Write a Grad-CAM heat-map PNG per image (predicted class) here."), None),
))
def predict(**options: Any) -> int:
    """Classify images with a trained model; exit 1 when any file could not be read."""
    from resnet_ft.cli.render import console, predictions_csv, predictions_table, print_json
    from resnet_ft.inference.predict import predict as run_predict

    if options["json"] and options["csv"]:
        raise usage("choose one of --json and --csv")
    explain = options["explain"]
    results = run_predict(options["run"], options["images"], explain=explain,
                          console=console(stderr=True),
                          **config_layer(options, InferenceOptions))
    if options["json"]:
        print_json(results)
    elif options["csv"]:
        sys.stdout.write(predictions_csv(results))
    else:
        console().print(predictions_table(results))
        if explain is not None:
            maps = sum("heatmap" in r for r in results)
            console().print(f"{maps} heat map(s) written to {explain}")
    failed = [r for r in results if "error" in r]
    for row in failed:
        sys.stderr.write(f"error: {row['file']}: {row['error']}\n")
    return 1 if failed else 0
