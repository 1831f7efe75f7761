"""Process-wide switches of native and third-party libraries, scoped to one call.

Silencing what native libraries print straight to file descriptor 2:

TensorFlow's C++ runtime, the TFLite converter and its interpreter write
INFO lines (oneDNN notices, quantization settings, "Created TensorFlow Lite
XNNPACK delegate") to fd 2, below Python's ``sys.stderr`` and before any log
level applies. The command line's stderr is for one-line errors, so the
places that trigger such output run inside :func:`native_stderr_discarded`.
Python exceptions are unaffected: failures still surface with their messages.

Some libraries read an environment variable at call time instead of taking an
argument (tf2onnx's graph copies): :func:`environment` sets it for the call only.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def native_stderr_discarded() -> Iterator[None]:
    """Point fd 2 at /dev/null inside the block; restore it afterwards, even on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables inside the block (a library's switch read at call time);
    restore what was there afterwards, even on error."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
