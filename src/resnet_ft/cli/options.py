"""Command-line options generated from config fields: one generator for every command.

Every config field (:func:`~resnet_ft.config.fields.setting`) becomes an
option — or a positional argument, in the order of the config's
``ARGUMENTS`` — with the field's help text and its real default, grouped in
``--help`` under its section's title, so no command's options can drift from
the config. Options default to "not given" (``None``) so that a YAML
``--config`` layer can set them and the command line wins only where it says
something. A command takes the fields it needs (``only``) plus options of its
own (:class:`Extra`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from resnet_ft.config.fields import Config, field_table, section_of


@dataclasses.dataclass(frozen=True)
class Extra:
    """An option of the command itself (not a config field): where to write, --json, ..."""

    name: str
    kind: Any
    info: Any
    default: Any = inspect.Parameter.empty


def option_help(field: dataclasses.Field) -> str:
    """The field's help, its default in brackets (or what ``shown`` says), then its note.

    Brackets are escaped: typer renders help as rich markup, where ``[crop]``
    would be read as a style tag and vanish.
    """
    meta = field.metadata
    shown = meta["shown"] if meta["shown"] is not None else _default_text(field.default)
    text = meta["help"] + (f" [{shown}]" if shown else "") + "."
    return escape(f"{text} {meta['note']}" if meta["note"] else text)


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if value is None or isinstance(value, bool) or value == "":
        return ""
    return str(value)


def field_parameters(field: dataclasses.Field, panel: str = "") -> list[inspect.Parameter]:
    """The command-line parameters that set one config field."""
    meta, name = field.metadata, field.name
    kind = Path if meta["path"] else {"int": int, "float": float}.get(
        str(field.type).split(" ")[0], str)
    grouped = {"rich_help_panel": panel} if panel else {}
    params = []
    if meta["cli"] == "argument":
        params.append(parameter(name, kind | None, typer.Argument(help=option_help(field)), None))
    elif meta["cli"] == "flag":
        flag = typer.Option(f"--{name.replace('_', '-')}", help=option_help(field), **grouped)
        params.append(parameter(name, bool | None, flag, None))
    elif meta["cli"] == "option":
        names = [f"--{meta['flag']}"] if meta.get("flag") else []
        params.append(parameter(name, kind | None,
                                typer.Option(*names, help=option_help(field), **grouped), None))
    if meta["off"] is not None:
        off = typer.Option(f"--no-{name.replace('_', '-')}", help=f"{meta['off'][0]}.",
                           **grouped)
        params.append(parameter(f"no_{name}", bool, off, False))
    return params


def parameter(name: str, kind: Any, info: Any, default: Any) -> inspect.Parameter:
    """A keyword parameter typer reads as an option or argument."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, info])


def config_layer(options: dict[str, Any], kind: type[Config]) -> dict[str, Any]:
    """The config values the command line gave (``--no-X`` included); others left out."""
    layer: dict[str, Any] = {}
    for field in dataclasses.fields(kind):  # type: ignore[arg-type]
        if options.get(field.name) is not None:
            layer[field.name] = options[field.name]
        if field.metadata["off"] is not None and options.get(f"no_{field.name}"):
            layer[field.name] = field.metadata["off"][1]
    return layer


def command(kind: type[Config], *, only: Sequence[str] | None = None,
            first: Sequence[Extra] = (), last: Sequence[Extra] = (),
            panels: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give ``function(**options)`` the parameters typer reads: the config's arguments, the
    ``first`` extras, the fields (``only`` these, in declaration order), the ``last`` extras.

    ``panels`` groups the fields by section in ``--help`` (for commands with many).
    """
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        fields = {name: field_parameters(field, section_of(kind, name) if panels else "")
                  for name, field in field_table(kind).items()
                  if only is None or name in only}
        arguments = [p for name in kind.ARGUMENTS if name in fields for p in fields.pop(name)]
        options = [p for params in fields.values() for p in params]
        own = [parameter(e.name, e.kind, e.info, e.default) for e in (*first, *last)]
        signature = inspect.Signature(
            [*arguments, *own[:len(first)], *options, *own[len(first):]])
        function.__signature__ = signature  # type: ignore[attr-defined]
        function.__annotations__ = {p.name: p.annotation
                                    for p in signature.parameters.values()}
        return function

    return decorate
