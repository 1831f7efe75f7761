"""``resnet-ft report``: a run's results as a static web page (mistakes, heat maps, numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import RunArgument
from resnet_ft.evaluation.top_losses import TOP_LOSSES

EPILOG = ("Examples:\n\n  resnet-ft report runs/flowers --open\n\n"
          "  resnet-ft report runs/flowers data/test -o reports/test\n\n"
          "  resnet-ft report runs/flowers --doctor runs/flowers/doctor")


def report(
    run: RunArgument,
    data_dir: Annotated[
        Path | None,
        typer.Argument(help="Class-per-folder images to evaluate (default: the run's "
                       "validation split)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Report folder [RUN/report].")
    ] = None,
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the page in the web browser.")
    ] = False,
    top: Annotated[
        int, typer.Option(min=1, help="Top-loss images to show with heat maps.")
    ] = TOP_LOSSES,
    top_k: Annotated[int, typer.Option(min=1, help="k of top-k accuracy (shown when k < "
                                                  "classes).")] = 5,
    doctor: Annotated[
        Path | None, typer.Option(help="Folder of 'resnet-ft doctor' findings (CSV) to show.")
    ] = None,
) -> None:
    """Write a self-contained HTML report: confusion drill-down, top losses, curves, calibration."""
    from resnet_ft.cli.render import console
    from resnet_ft.evaluation.report import build_report, open_in_browser

    index = build_report(run, data_dir, out=out, top=top, top_k=top_k, doctor=doctor,
                         console=console(stderr=True))
    console().print(f"report written to {index}")
    if open_page and not open_in_browser(index):
        console(stderr=True).print(f"no web browser found; open {index.resolve().as_uri()}")
