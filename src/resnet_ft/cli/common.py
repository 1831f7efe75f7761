"""Option types shared by several commands, and the usage error they raise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.options import Extra
from resnet_ft.errors import InputError

JSON_HELP = "Print one JSON document for scripts."
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
#: ``--json`` for commands whose options are generated (:func:`resnet_ft.cli.options.command`).
JSON = Extra("json", bool, typer.Option("--json", help=JSON_HELP), False)
RunArgument = Annotated[Path, typer.Argument(help="Run directory.")]


def usage(message: str) -> InputError:
    """An error in how a command was called: exit code 2, one line."""
    return InputError(message)
