"""The command line: a thin layer that parses, calls :mod:`resnet_ft`'s API and renders.

Only :func:`main` is re-exported: binding the Typer object here as ``app``
would hide the module ``resnet_ft.cli.app`` behind it.
"""

from resnet_ft.cli.app import main

__all__ = ["main"]
