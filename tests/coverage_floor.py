"""Per-module line coverage against a floor: ``python tests/coverage_floor.py REPORT.json 90``.

``coverage report`` can fail only on the total; a module can hide behind the
others there. This reads coverage's JSON report and lists every module of
``src/`` below the floor (exit 1 if there is one, with ``--strict``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def below(report: dict, floor: float) -> list[tuple[str, float]]:
    files = report["files"].items()
    return sorted((name, data["summary"]["percent_covered"]) for name, data in files
                  if data["summary"]["percent_covered"] < floor)


def main(path: str, floor: str, *flags: str) -> int:
    modules = below(json.loads(Path(path).read_text(encoding="utf-8")), float(floor))
    for name, percent in modules:
        print(f"below {floor} %: {name} {percent:.1f} %")
    print(f"{len(modules)} module(s) below {floor} % line coverage")
    return 1 if modules and "--strict" in flags else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
