"""``resnet-ft doctor``: duplicates, leakage, label errors and outliers of a data set.

Takes ``train``'s data and preprocessing options (generated from the same
``TrainConfig`` fields) so it reads and fills the feature cache ``train``
uses; the label-error heads use the config's head settings.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.train import _field_parameters, _param, config_layer
from resnet_ft.training.config import TrainConfig

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
_OPTIONS: list[tuple[str, Any, Any, Any]] = [
    ("out", Path | None, typer.Option("-o", "--out", help="Report directory [./DATA_DIR.doctor]."),
     None),
    ("folds", int, typer.Option(help="Folds of the label-error heads (20 epochs, batch 32 unless "
                                     "--epochs, --batch-size or --config say)."), 5),
    ("fix_split", bool, typer.Option(help="Also write a leakage-free split.csv."), False),
    ("config", Path | None, typer.Option(help="YAML file with train options."), None),
    ("json", bool, typer.Option("--json", help="Print one JSON document for scripts."), False),
]
KINDS = ("exact_duplicates", "near_duplicates", "label_issues", "outliers", "unreadable")


def doctor(**options: Any) -> None:
    """Find duplicates, train/val leakage, likely label errors and outliers."""
    from resnet_ft.cli.render import console, print_json
    from resnet_ft.diagnostics.run import diagnose
    from resnet_ft.training.config import load_yaml, make_config

    layers = [HEAD_DEFAULTS] + ([load_yaml(options["config"])] if options["config"] else [])
    config = make_config(*layers, config_layer(options))
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
    if rows and kind in ("label_issues", "outliers"):
        top = rows[0]
        return f"top: {Path(top['file']).name} ({top['reason']})"
    return ""


def _signature() -> inspect.Signature:
    fields = [p for f in dataclasses.fields(TrainConfig) if f.name in DATA_OPTIONS
              for p in _field_parameters(f)]
    own = [_param(name, kind, info, default) for name, kind, info, default in _OPTIONS]
    return inspect.Signature([*fields, *own])


doctor.__signature__ = _signature()  # type: ignore[attr-defined]
doctor.__annotations__ = {p.name: p.annotation for p in doctor.__signature__.parameters.values()}
