"""``make test``'s coverage plumbing: a child process's part, and the merged per-module floor.

A child that measured nothing, or a merge that dropped a child's lines, would show as
modules quietly losing coverage; these pin both on a package made here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import coverage_floor

CHILD_COVERAGE = Path(__file__).parents[1] / "support" / "child_coverage"


def _package(root: Path) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text(
        "def run(flag):\n"
        "    if flag:\n"
        "        return 'yes'\n"
        "    return 'no'\n"
    )
    (package / "__main__.py").write_text(
        "from pkg.helper import run\n"
        "\n"
        "print(run(True))\n"
    )
    return package


def test_a_child_run_with_dash_m_writes_its_lines_main_module_included(tmp_path):
    package, parts = _package(tmp_path), tmp_path / "parts"
    parts.mkdir()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("COVERAGE_", "SLIPCOVER_", "PYTHONPATH"))}
    env.update(PYTHONPATH=os.pathsep.join([str(CHILD_COVERAGE), str(tmp_path)]),
               COVERAGE_PARTS=str(parts), COVERAGE_SOURCE=str(package))
    done = subprocess.run([sys.executable, "-m", "pkg"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "yes\n"
    written = list(parts.iterdir())
    assert len(written) == 1 and written[0].name.startswith("child-")
    files = json.loads(written[0].read_text())["files"]
    assert {name: (data["executed_lines"], data["missing_lines"])
            for name, data in files.items()} == {
        "pkg/__init__.py": ([], []),
        "pkg/helper.py": ([1, 2, 3], [4]),
        "pkg/__main__.py": ([1, 3], []),
    }


def _part(files: dict[str, tuple[list[int], list[int]]]) -> dict:
    return {"meta": {"software": "slipcover", "branch_coverage": False, "show_contexts": False},
            "files": {name: {"executed_lines": executed, "missing_lines": missing}
                      for name, (executed, missing) in files.items()}}


def test_children_lines_are_merged_before_the_floor_is_applied(tmp_path, capsys):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "suite.json").write_text(json.dumps(_part({
        "src/a.py": ([1, 2], [3, 4]), "src/b.py": ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [])})))
    (parts / "child-7.json").write_text(json.dumps(_part({"src/a.py": ([1, 3], [2, 4])})))
    out = tmp_path / "coverage.json"
    assert coverage_floor.main(str(parts), str(out), "90") == 0
    assert coverage_floor.main(str(parts), str(out), "90", "--strict") == 1
    report = json.loads(out.read_text())
    assert report["files"]["src/a.py"]["executed_lines"] == [1, 2, 3]
    assert report["files"]["src/a.py"]["missing_lines"] == [4]
    assert report["summary"]["percent_covered"] == 13 / 14 * 100
    assert capsys.readouterr().out.splitlines()[:5] == [
        "src/a.py      4      1   75.0%",
        "src/b.py     10      0  100.0%",
        "TOTAL        14      1   92.9%",
        "below 90 %: src/a.py 75.0 %",
        "1 child process(es) merged; 1 module(s) below 90 % line coverage",
    ]
