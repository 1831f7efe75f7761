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
from types import CodeType
from typing import Any


def _measure(parts: str, source: str) -> None:
    import atexit
    import json

    import slipcover

    # no source for Slipcover itself: the suite's report already lists files never imported
    measured = slipcover.Slipcover()
    matcher = slipcover.FileMatcher(sources=[source])
    slipcover.ImportManager(measured, matcher).__enter__()
    _instrument_runpy(measured, matcher)

    def write() -> None:
        path = os.path.join(parts, f"child-{os.getpid()}.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(measured.get_coverage(), file)

    atexit.register(write)


def _instrument_runpy(measured: Any, matcher: Any) -> None:
    """``python -m resnet_ft`` runs ``__main__.py`` through runpy, which compiles it without
    the import hooks that instrument everything else: instrument that code on its way in."""
    import runpy

    run_code = runpy._run_code

    def instrumented(code: CodeType, *args: Any, **kwargs: Any) -> Any:
        if matcher.matches(code.co_filename):
            code = measured.instrument(code)
        return run_code(code, *args, **kwargs)

    runpy._run_code = instrumented


if os.environ.get("COVERAGE_PARTS") and os.environ.get("COVERAGE_SOURCE"):
    _measure(os.environ["COVERAGE_PARTS"], os.environ["COVERAGE_SOURCE"])
