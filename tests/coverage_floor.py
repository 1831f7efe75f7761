"""The suite's line coverage, per module and against a floor.

Usage: ``python tests/coverage_floor.py PARTS REPORT.json 90 [--strict]``.

PARTS is the folder of SlipCover JSON files that ``make test`` collects: the
pytest processes' (``suite.json``) and one per child process that a test started
(support/child_coverage). They are merged into REPORT.json, the per-module table
is printed, and every module of ``src/`` below the floor is listed (exit 1 if there
is one, with ``--strict``). A total can hide a poorly tested module behind the
others; the per-module list cannot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import slipcover


def merged(parts: Path) -> tuple[dict, int]:
    """The suite's coverage with every child process's lines added, and how many children."""
    report = json.loads((parts / "suite.json").read_text(encoding="utf-8"))
    children = sorted(parts.glob("child-*.json"))
    for child in children:
        slipcover.merge_coverage(report, json.loads(child.read_text(encoding="utf-8")))
    return report, len(children)


def _row(name: str, summary: dict) -> tuple[str, int, int, float]:
    return (name, summary["covered_lines"] + summary["missing_lines"], summary["missing_lines"],
            summary["percent_covered"])


def table(report: dict) -> str:
    """Lines, lines missed and percent covered for each module, then the total."""
    rows = [_row(name, data["summary"]) for name, data in sorted(report["files"].items())]
    rows.append(_row("TOTAL", report["summary"]))
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{name:<{width}} {lines:6d} {missed:6d} {percent:6.1f}%"
                     for name, lines, missed, percent in rows)


def below(report: dict, floor: float) -> list[tuple[str, float]]:
    files = report["files"].items()
    return sorted((name, data["summary"]["percent_covered"]) for name, data in files
                  if data["summary"]["percent_covered"] < floor)


def main(parts: str, out: str, floor: str, *flags: str) -> int:
    report, children = merged(Path(parts))
    Path(out).write_text(json.dumps(report), encoding="utf-8")
    print(table(report))
    modules = below(report, float(floor))
    for name, percent in modules:
        print(f"below {floor} %: {name} {percent:.1f} %")
    print(f"{children} child process(es) merged; "
          f"{len(modules)} module(s) below {floor} % line coverage")
    return 1 if modules and "--strict" in flags else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
