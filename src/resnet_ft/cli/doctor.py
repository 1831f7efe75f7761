"""``resnet-ft doctor``: duplicates, leakage, label errors, weak slices, outliers, quality.

Takes ``train``'s data and preprocessing options (generated from the same
``TrainConfig`` fields) so it reads and fills the feature cache ``train``
uses; the label-error heads use the config's head settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.common import JSON
from resnet_ft.cli.options import Extra, command, config_layer
from resnet_ft.config import TrainConfig

EPILOG = (
    "Examples:\n\n"
    "  resnet-ft doctor flower_photos --backbone backbone.keras\n\n"
    "  resnet-ft doctor flower_photos --backbone backbone.keras -o reports/flowers --fix-split"
    "\n\n  resnet-ft doctor data --val-dir holdout --backbone backbone.keras --json"
)
DATA_OPTIONS = ("data_dir", "backbone", "val_dir", "image_size", "resize", "cache_dir",
                "precision", "val_split", "seed", "epochs", "batch_size")
#: The label-error heads' defaults (a few seconds per fold); --config or options override.
HEAD_DEFAULTS = {"epochs": 20, "batch_size": 32}
OWN_OPTIONS = (
    Extra("out", Path | None, typer.Option("-o", "--out",
                                           help="Report directory [./DATA_DIR.doctor]."), None),
    Extra("folds", int, typer.Option(help="Folds of the label-error heads (20 epochs, batch 32 "
                                          "unless --epochs, --batch-size or --config say)."), 5),
    Extra("fix_split", bool, typer.Option(help="Also write a leakage-free split.csv."), False),
    Extra("config", Path | None, typer.Option(help="YAML file with train options."), None),
    JSON,
)
KINDS = ("exact_duplicates", "near_duplicates", "duplicate_groups", "label_issues", "slices",
         "outliers", "quality", "unreadable")


@command(TrainConfig, only=DATA_OPTIONS, last=OWN_OPTIONS, panels=False)
def doctor(**options: Any) -> None:
    """Find duplicates, train/val leakage, likely label errors, weak slices, outliers and
    poor-quality images (dark, overexposed, blurry, low information, odd aspect, tiny, grey)."""
    from resnet_ft.cli.render import console, print_json
    from resnet_ft.config import load_yaml, make_config
    from resnet_ft.diagnostics.run import diagnose

    layers = [HEAD_DEFAULTS] + ([load_yaml(options["config"])] if options["config"] else [])
    config = make_config(*layers, config_layer(options, TrainConfig))
    report = diagnose(config, options["out"], folds=options["folds"],
                      fix_split=options["fix_split"], console=console(stderr=True))
    if options["json"]:
        print_json(report.to_json())
        return
    out = console()
    out.print(_table(report))
    for note in report.notes:
        out.print(note)
    out.print(f"report written to {report.out_dir}")


def _table(report: Any) -> Any:
    from rich.table import Table

    shape = report.shape
    table = Table(title=f"{report.data_dir}: {shape['usable']} usable images in "
                  f"{len(shape['classes'])} classes (imbalance {shape['imbalance']:.2f})",
                  title_justify="left")
    for column in ("finding", "count", "details"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for kind in KINDS:
        rows = report.findings[kind]
        table.add_row(kind.replace("_", " "), str(len(rows)), _details(kind, rows))
    return table


def _details(kind: str, rows: list[dict[str, Any]]) -> str:
    if kind.endswith("duplicates"):
        counts: dict[str, int] = {}
        for row in rows:
            for category in row["category"].split("; "):
                counts[category] = counts.get(category, 0) + 1
        return ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
    if kind in ("quality", "duplicate_groups"):
        column = "check" if kind == "quality" else "group"
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(str(row[column]), set()).add(row["file"])
        if kind == "duplicate_groups":
            return f"{len(found)} groups, {len(rows)} files" if rows else ""
        return ", ".join(f"{len(files)} {name}" for name, files in sorted(found.items()))
    if rows and kind in ("label_issues", "outliers", "slices"):
        top = rows[0]
        return f"top: {Path(top.get('file') or top['file_1']).name} ({top['reason']})"
    return ""
