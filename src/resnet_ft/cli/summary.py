"""``resnet-ft summary``: trainable vs frozen parameters per stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import JsonFlag

EPILOG = ("Examples:\n\n  resnet-ft summary backbone.keras\n\n"
          "  resnet-ft summary runs/flowers --json")


def summary(
    model: Annotated[
        Path, typer.Argument(help="Backbone .keras file or training run directory.")
    ],
    json_output: JsonFlag = False,
) -> None:
    """Trainable vs frozen parameter counts, per stage."""
    from resnet_ft.cli.render import console, print_json, summary_table
    from resnet_ft.runs.run import summarize

    result = summarize(model)
    if json_output:
        print_json(result.to_dict())
    else:
        console().print(summary_table(result))
