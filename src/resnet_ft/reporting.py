"""Rendering results for people (rich tables) and for scripts (JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from resnet_ft.summary import ParameterSummary


def console(stderr: bool = False) -> Console:
    """A console that writes plain text (no colour, no cursor tricks, no hard wraps) when piped."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Print one JSON document to stdout, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def summary_table(summary: ParameterSummary) -> Table:
    """Parameters per stage with trainable, frozen, BN statistics and total columns."""
    table = Table(title=f"{summary.model}: parameters per stage", title_justify="left")
    table.add_column("stage")
    for column in ("trainable", "frozen", "of which BN stats", "total"):
        table.add_column(column, justify="right")
    for stage in summary.stages:
        table.add_row(
            stage.name, f"{stage.trainable:,}", f"{stage.non_trainable:,}",
            f"{stage.bn_statistics:,}", f"{stage.total:,}",
        )
    table.add_section()
    table.add_row(
        "total", f"{summary.trainable:,}", f"{summary.non_trainable:,}",
        f"{summary.bn_statistics:,}", f"{summary.total:,}", style="bold",
    )
    return table
