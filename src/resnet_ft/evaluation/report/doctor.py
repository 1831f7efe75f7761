"""``doctor`` findings (duplicates, label issues, outliers, ...) read generically from CSV files.

``doctor`` writes one CSV per kind of finding. The report does not hard-code
the kinds: any CSV in the folder with a ``file`` column, or ``file_a`` /
``file_b`` (any ``file_*``) columns for findings about several files, and a
``score`` or ``reason`` column, is a kind; its other columns are shown as
they are. A new kind of finding needs no change here. (A file list without
score or reason, such as the ``split.csv`` that ``doctor --fix-split``
writes, is not a finding.)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from resnet_ft.errors import InputError

#: Rows shown per kind; the rest are counted and left in the CSV.
MAX_ROWS = 200


@dataclass
class Findings:
    """One kind of finding: its CSV, the columns naming files, the others, and the rows."""

    csv: Path
    file_columns: list[str]
    other_columns: list[str]
    rows: list[dict[str, str]]
    total: int

    @property
    def title(self) -> str:
        """``near_duplicates.csv`` -> ``Near duplicates``."""
        return self.csv.stem.replace("_", " ").replace("-", " ").capitalize()


def read_findings(folder: Path) -> list[Findings]:
    """Every findings CSV in ``folder``, sorted by name; an error when there is none."""
    if not folder.is_dir():
        raise InputError(f"--doctor: folder not found: {folder}")
    kinds = [kind for path in sorted(folder.glob("*.csv")) if (kind := _read(path)) is not None]
    if not kinds:
        raise InputError(f"--doctor: no findings in {folder} (a CSV file with a 'file' or "
                         "'file_a'/'file_b' column and a 'score' or 'reason' column)")
    return kinds


def _read(path: Path) -> Findings | None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--doctor: cannot read {path}: {exc}") from exc
    files = [c for c in columns if c == "file" or c.startswith("file_")]
    if not files or not {"score", "reason"} & set(columns):
        return None
    others = [c for c in columns if c not in files]
    return Findings(path, files, others, rows[:MAX_ROWS], len(rows))


def resolve(value: str, bases: list[Path]) -> Path:
    """A file named in a findings CSV: absolute, or relative to the first base that has it."""
    path = Path(value)
    if path.is_absolute():
        return path
    for base in bases:
        if (base / path).exists():
            return base / path
    return path
