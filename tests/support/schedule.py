"""Test modules in the order that finishes the suite soonest on xdist's workers.

``make test`` gives each module to one worker (``--dist loadscope``), so the suite ends
when the worker that drew the last long module does. This plugin collects the modules
longest first and xdist hands them out in that order (longest-processing-time first), so
the short modules fill the gaps at the end. Handed out by number of tests (xdist's
default order, which the Makefile turns off with ``--no-loadscope-reorder``), a
100-second module with five tests came late and left the other worker idle for 11-36 s
of each run.

The seconds come from ``tests/module_seconds.json``, a record of a whole run (setup,
call and teardown of each test, summed by module). Record it again after adding or
changing heavy tests::

    make test PYTEST_ADDOPTS="--record-module-seconds tests/module_seconds.json"

A module the record does not know goes first: it may be long, and a short module costs
nothing at the front.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

RECORD = Path(__file__).parent.parent / "module_seconds.json"


def module_of(nodeid: str) -> str:
    """``tests/e2e/test_x.py`` of ``tests/e2e/test_x.py::test_y[z]``."""
    return nodeid.split("::", 1)[0]


def longest_first(items: list, seconds: dict[str, float]) -> list:
    """``items`` grouped by module, modules by recorded seconds (unknown first), longest first.

    Within a module the order is collection order (module fixtures and tests that
    build on each other keep theirs); modules of equal seconds keep theirs too.
    """
    modules: dict[str, list] = defaultdict(list)
    for item in items:
        modules[module_of(item.nodeid)].append(item)
    ranked = sorted(modules, key=lambda name: -seconds.get(name, float("inf")))
    return [item for name in ranked for item in modules[name]]


def read_record(path: Path) -> dict[str, float]:
    """The recorded seconds by module; empty (collection order stays) where there is none."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-module-seconds", metavar="PATH", default=None,
                     help="write each test module's seconds (setup, call, teardown) as JSON")


def pytest_collection_modifyitems(items: list) -> None:
    items[:] = longest_first(items, read_record(RECORD))


class Recorder:
    """Sums each module's test durations as the reports arrive (from every xdist worker)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[module_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        ranked = sorted(self.seconds.items(), key=lambda pair: -pair[1])
        self.path.write_text(json.dumps({name: round(value, 1) for name, value in ranked},
                                        indent=1) + "\n", encoding="utf-8")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--record-module-seconds")
    if path and not hasattr(config, "workerinput"):  # the controller hears every worker
        config.pluginmanager.register(Recorder(Path(path)), "module-seconds-recorder")
