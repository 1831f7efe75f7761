"""The command line: a thin layer that parses, calls :mod:`resnet_ft`'s API and renders."""

from resnet_ft.cli.app import app, main

__all__ = ["app", "main"]
