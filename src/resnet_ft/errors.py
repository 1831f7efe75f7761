"""Error types that the CLI turns into one-line messages and exit codes.

Library code raises these instead of printing or exiting, so that the same
failure reads well both from the command line (``error: ...``, exit code) and
from Python (an ordinary exception with a precise message).
"""

from __future__ import annotations

import urllib.error

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ResnetFtError(Exception):
    """Base class: an expected failure whose message is meant for the user."""

    exit_code: int = EXIT_FAILURE


class InputError(ResnetFtError):
    """The user's input (path, file, option, config) is unusable."""

    exit_code = EXIT_USAGE


class CheckpointError(InputError):
    """A checkpoint cannot be read or does not match the architecture."""


class ImageDecodeError(InputError):
    """One image file cannot be decoded; the message says why."""


class ChecksumError(ResnetFtError):
    """Downloaded bytes differ from the pinned or recorded digest; they were not kept."""


class OutputError(ResnetFtError):
    """An output cannot be written (permissions, disk full, ...)."""


class NonFiniteError(ResnetFtError):
    """A computation produced NaN or infinity; the message says what, where and what to do."""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message, whitespace-collapsed, for an ``error:`` line.

    Libraries (TensorFlow, h5py, Keras, urllib) raise multi-line messages, an
    OpError keeps its text in ``.message``, and a ``URLError`` hides the cause
    in ``.reason``; every one-line error in resnet-ft goes through here. An
    empty message falls back to the exception's type name. ``limit`` cuts very
    long lines (some converters print whole graphs).
    """
    cause: object = exc
    if isinstance(exc, urllib.error.URLError) and exc.reason is not None:
        cause = exc.reason
    if isinstance(cause, TimeoutError):
        return "timed out"
    text = str(getattr(cause, "message", None) or cause).strip()
    line = " ".join(text.splitlines()[0].split()) if text else type(cause).__name__
    return line[:limit] if limit else line
