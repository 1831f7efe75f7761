"""Third-party work run without coverage's tracer.

Coverage measures resnet_ft alone, but its tracer still slows every Python call
it sees. Numba's compiler is Python through and through: UMAP's kernels took
52 s to compile under the tracer against 35 s without (a fresh numba cache,
tests/unit/test_data_map.py). Lines of resnet_ft never run inside these blocks,
so nothing that is measured goes unmeasured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Pause the running coverage measurement (if any) inside the block."""
    import coverage

    running = coverage.Coverage.current()
    if running is None:
        yield
        return
    running.stop()
    try:
        yield
    finally:
        running.start()
