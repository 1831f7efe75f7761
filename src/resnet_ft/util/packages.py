"""Optional packages: found without importing them, and named in one line when missing.

int8 extraction and the ONNX and OpenVINO exports run on engines that most users never
need (hundreds of MB installed), so they are extras; a command that needs one says
which install line brings it, before any slow work starts.
"""

from __future__ import annotations

import importlib.util

from resnet_ft.errors import InputError


def missing(packages: tuple[str, ...]) -> list[str]:
    """The ``packages`` that cannot be imported (a ``None`` entry in ``sys.modules``, the
    usual way to hide one, counts as missing)."""
    absent = []
    for name in packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package that is itself missing
            found = False
        if not found:
            absent.append(name)
    return absent


def require(packages: tuple[str, ...], needed_by: str, extra: str) -> None:
    """Raise one line naming what ``needed_by`` lacks and the extra that installs it."""
    absent = missing(packages)
    if absent:
        raise InputError(f"{needed_by} needs {' and '.join(absent)}, not installed: "
                         f"pip install 'resnet-ft[{extra}]'")
