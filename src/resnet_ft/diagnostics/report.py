"""The doctor's report: one row per finding, written as CSV per kind and one JSON document.

Every kind's rows name the files involved (``file``, or ``file_a``/``file_b``
for pairs), a ``score`` and a ``reason``, so other tools (``report``) can read
any of the CSV files without knowing the kind. The output directory is
written as a whole and atomically; it replaces only an earlier doctor report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_ft.diagnostics.slices import REPRESENTATIVES
from resnet_ft.errors import InputError
from resnet_ft.util.atomic import atomic_dir
from resnet_ft.util.tables import csv_text

PAIR_COLUMNS = ("group", "file_a", "file_b", "label_a", "label_b", "subset_a", "subset_b",
                "category", "score", "reason")
COLUMNS = {
    "exact_duplicates": PAIR_COLUMNS,
    "near_duplicates": (*PAIR_COLUMNS, "hash_distance", "feature_similarity"),
    "label_issues": ("file", "label", "suggested", "score", "given_probability",
                     "suggested_probability", "reason"),
    "outliers": ("file", "label", "nearest_class", "score", "affinity", "reason"),
    "unreadable": ("file", "label", "score", "reason"),
    "quality": ("file", "label", "check", "score", "threshold", "reason"),
    "duplicate_groups": ("group", "size", "file", "label", "subset", "classes", "sides", "score",
                         "reason"),
    "slices": ("slice", "size", "accuracy", "overall_accuracy", "p_value", "classes",
               *(f"file_{k + 1}" for k in range(REPRESENTATIVES)), "score", "reason"),
}
SHAPE_COLUMNS = ("class", "train", "val", "total", "share", "width_min", "width_median",
                 "width_max", "height_min", "height_median", "height_max")
REPORT_FILE = "doctor.json"


@dataclass
class DoctorReport:
    """Everything ``doctor`` found; ``findings`` has a list of rows per kind (see COLUMNS)."""

    data_dir: str
    out_dir: Path
    shape: dict[str, Any]
    findings: dict[str, list[dict[str, Any]]]
    notes: list[str] = field(default_factory=list)
    extracted: int = 0
    split_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "out_dir": str(self.out_dir), "shape": self.shape,
                **self.findings, "notes": self.notes, "extracted": self.extracted,
                "split_file": self.split_file}


def check_out_dir(out_dir: Path, data_dirs: list[Path]) -> None:
    """The report must not go inside the data, nor replace a folder that is not a report."""
    resolved = out_dir.resolve()
    for data in data_dirs:
        if resolved == data.resolve() or resolved.is_relative_to(data.resolve()):
            raise InputError(f"output directory {out_dir} is inside the data ({data}); "
                             "choose another with -o")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / REPORT_FILE).is_file():
        raise InputError(f"output directory {out_dir} is not empty and holds no doctor "
                         "report; choose another with -o")


def write_report(report: DoctorReport, split_csv: str | None) -> None:
    """CSV per kind, ``classes.csv`` (the data set's shape), ``doctor.json``, ``split.csv``."""
    with atomic_dir(report.out_dir) as tmp:
        for kind, columns in COLUMNS.items():
            rows = [[_cell(row.get(c)) for c in columns] for row in report.findings[kind]]
            (tmp / f"{kind}.csv").write_text(csv_text(columns, rows), encoding="utf-8")
        shape_rows = [[_cell(row[c]) for c in SHAPE_COLUMNS] for row in report.shape["classes"]]
        (tmp / "classes.csv").write_text(csv_text(SHAPE_COLUMNS, shape_rows), encoding="utf-8")
        if split_csv is not None:
            (tmp / "split.csv").write_text(split_csv, encoding="utf-8")
        (tmp / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=2,
                                                  ensure_ascii=False), encoding="utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value
