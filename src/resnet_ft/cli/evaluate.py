"""``resnet-ft evaluate``: a run's metrics on a labelled class-per-folder set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import JsonFlag, RunArgument
from resnet_ft.cli.predict import PrecisionOption

EPILOG = ("Examples:\n\n  resnet-ft evaluate runs/flowers data/test\n\n"
          "  resnet-ft evaluate runs/flowers data/test --json -o reports/test\n\n"
          "  resnet-ft evaluate runs/flowers data/test --tta\n\n"
          "  resnet-ft evaluate runs/flowers data/big_test --precision auto")


def evaluate(
    run: RunArgument,
    data_dir: Annotated[Path, typer.Argument(help="Class-per-folder images, same classes.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Report folder [RUN/eval/<name>].")
    ] = None,
    top_k: Annotated[int, typer.Option(min=1, help="k of top-k accuracy.")] = 5,
    json_output: JsonFlag = False,
    model: Annotated[
        Path | None,
        typer.Option(help="An exported SavedModel or .tflite to evaluate instead of RUN's model."),
    ] = None,
    tta: Annotated[bool, typer.Option(
        "--tta", help="Average each image's probabilities with its mirror's; prints accuracy "
        "with and without.")] = False,
    precision: PrecisionOption = "float32",
) -> None:
    """Accuracy, per-class precision/recall/F1 and confusion matrix of a run on a dataset."""
    from resnet_ft.cli.render import console, metrics_tables, print_json, tta_line
    from resnet_ft.evaluation.evaluate import evaluate as run_evaluate

    result = run_evaluate(run, data_dir, out=out, top_k=top_k, model=model, tta=tta,
                          precision=precision, console=console(stderr=True))
    for path, reason in result.skipped.items():
        sys.stderr.write(f"warning: skipped {path}: {reason}\n")
    if json_output:
        print_json(result.report)
        return
    for table in metrics_tables(result.report):
        console().print(table)
    if tta:
        console().print(tta_line(result.report, result.cached))
    console().print(f"report written to {result.folder}")
