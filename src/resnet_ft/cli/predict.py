"""``resnet-ft predict``: classify image files with a trained run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import JsonFlag, usage

#: ``--precision`` of ``predict`` and ``evaluate``: train's choices, float32 by default.
PrecisionOption = Annotated[str, typer.Option(
    help="float32 (the default: equals the exported model), or for bulk jobs auto, "
    "mixed_bfloat16 or mixed_float16 (auto as train picks it).")]

EPILOG = ("Examples:\n\n  resnet-ft predict runs/flowers photo.jpg\n\n"
          "  resnet-ft predict runs/flowers 'photos/*.jpg' --top-k 3 --json\n\n"
          "  resnet-ft predict runs/flowers photo.jpg --tta --explain heatmaps\n\n"
          "  resnet-ft predict runs/flowers photos/ --precision auto --csv\n\n"
          "  resnet-ft predict backbone.keras cat.jpg --labels imagenet_labels.txt")


def predict(
    run: Annotated[Path, typer.Argument(help="Run directory (or an --include-top backbone).")],
    images: Annotated[list[str], typer.Argument(help="Image files, directories or globs.")],
    top_k: Annotated[int, typer.Option(min=1, help="How many classes to list.")] = 5,
    json_output: JsonFlag = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV rows.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 32,
    labels: Annotated[
        Path | None, typer.Option(help="Class names, one per line, for an ImageNet backbone.")
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="Average each image's probabilities with its mirror's.")
    ] = False,
    explain: Annotated[
        Path | None,
        typer.Option(help="Write a Grad-CAM heat-map PNG per image (predicted class) here."),
    ] = None,
    precision: PrecisionOption = "float32",
) -> int:
    """Classify images with a trained model; exit 1 when any file could not be read."""
    from resnet_ft.cli.render import console, predictions_csv, predictions_table, print_json
    from resnet_ft.evaluation.predictor import predict as run_predict

    if json_output and csv_output:
        raise usage("choose one of --json and --csv")
    results = run_predict(run, images, top_k=top_k, batch_size=batch_size, labels=labels,
                          tta=tta, explain=explain, precision=precision,
                          console=console(stderr=True))
    if json_output:
        print_json(results)
    elif csv_output:
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
