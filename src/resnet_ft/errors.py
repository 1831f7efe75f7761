"""Error types that the CLI turns into one-line messages and exit codes.

Library code raises these instead of printing or exiting, so that the same
failure reads well both from the command line (``error: ...``, exit code) and
from Python (an ordinary exception with a precise message).
"""

from __future__ import annotations

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


class OutputError(ResnetFtError):
    """An output cannot be written (permissions, disk full, ...)."""
