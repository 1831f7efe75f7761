"""Line coverage in the suite's child processes (kill -9, SIGINT, two workers, sweep).

SlipCover measures the pytest processes; a ``python -m resnet_ft`` that a test
starts is a new interpreter, which Python lets a ``sitecustomize`` module start
measuring before anything else is imported. tests/conftest.py puts this folder on
the children's ``PYTHONPATH`` only while ``make test`` collects coverage; each
child writes its lines to ``$COVERAGE_PARTS`` at exit, and tests/coverage_floor.py
merges them with the suite's. A child killed with SIGKILL writes nothing, as
under any tracer.
"""

from __future__ import annotations

import os


def _measure(parts: str, source: str) -> None:
    import atexit
    import json

    import slipcover

    # no source for Slipcover itself: the suite's report already lists files never imported
    measured = slipcover.Slipcover()
    slipcover.ImportManager(measured, slipcover.FileMatcher(sources=[source])).__enter__()

    def write() -> None:
        path = os.path.join(parts, f"child-{os.getpid()}.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(measured.get_coverage(), file)

    atexit.register(write)


if os.environ.get("COVERAGE_PARTS") and os.environ.get("COVERAGE_SOURCE"):
    _measure(os.environ["COVERAGE_PARTS"], os.environ["COVERAGE_SOURCE"])
