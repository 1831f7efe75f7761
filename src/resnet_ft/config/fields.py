"""The machinery behind every config class: field declarations, YAML, merging, validation.

A config is a frozen dataclass whose fields carry everything the command line
and the validator need (:func:`setting`): help text, accepted values, how the
command line sets the field, and which section the field belongs to. Config
classes are assembled from *sections* (:mod:`resnet_ft.config.sections`), each
itself a frozen dataclass; :func:`make_config` merges option layers (YAML
files, then the command line), coerces types and checks ranges, so every
command validates its options the same way and names the key and the accepted
range in its one-line errors.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from resnet_ft.errors import InputError


def setting(default: Any, help: str, *, check: Callable[[Any], bool] | None = None,
            accepted: str = "", cli: str = "option", shown: str | None = None,
            note: str = "", off: tuple[str, Any] | None = None, path: bool = False,
            flag: str | None = None) -> Any:
    """A config field with everything the CLI and the validator need to know about it.

    ``help`` is the option's help text, to which ``--help`` appends the default
    (or ``shown`` in its place) and ``note``; ``check``/``accepted`` validate a value and
    word the error; ``cli`` says how the command line sets it: ``option``
    (``--name VALUE``), ``argument`` (positional), ``flag`` (``--name``
    turns it on) or ``none``; ``off = (help, value)`` adds a ``--no-name``
    flag that sets ``value``. ``path`` values are typed as paths on the
    command line and stored as strings. ``flag`` names the option when it
    should not be the field's name (``--student`` sets ``backbone``).
    """
    return field(default=default, metadata={
        "help": help, "check": check, "accepted": accepted, "cli": cli, "shown": shown,
        "note": note, "off": off, "path": path, "flag": flag,
    })


def one_of(choices: tuple[str, ...]) -> dict[str, Any]:
    """``check``/``accepted`` for a field that takes one of ``choices``."""
    return {"check": lambda v: v in choices, "accepted": f"one of {', '.join(choices)}"}


POSITIVE_INT = {"check": lambda v: v >= 1, "accepted": "an integer >= 1"}
POSITIVE = {"check": lambda v: v > 0 and math.isfinite(v), "accepted": "a number > 0"}
FRACTION = {"check": lambda v: 0 <= v < 1, "accepted": "a number in [0, 1)"}
COUNT = {"check": lambda v: v >= 0, "accepted": "an integer >= 0"}


class Config:
    """What every config class shares: cross-field checks and its sections.

    ``SECTIONS`` are the section classes a config is made of, in the order its
    options are listed; ``ARGUMENTS`` the fields set by positional
    command-line arguments.
    """

    SECTIONS: tuple[type, ...] = ()
    ARGUMENTS: tuple[str, ...] = ()

    def check(self) -> None:
        """Checks that involve several fields (each field's range is checked on its own)."""


AnyConfig = TypeVar("AnyConfig", bound=Config)


def section_of(kind: type[Config], name: str) -> str:
    """The title of the section that declares field ``name`` of ``kind`` ("" if none does)."""
    return _section_titles(kind).get(name, "")


@functools.cache
def _section_titles(kind: type[Config]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for section in kind.SECTIONS:
        for item in fields(section):
            titles.setdefault(item.name, section.TITLE)  # type: ignore[attr-defined]
    return titles


@functools.cache
def field_table(kind: type[Config]) -> dict[str, dataclasses.Field]:
    """``{name: field}`` of a config class, in declaration order."""
    return {f.name: f for f in fields(kind)}  # type: ignore[arg-type]


def _coerce(key: str, value: Any, kind: type[Config]) -> Any:
    coerce = getattr(kind, "coerce_" + key, None)
    if coerce is not None:
        return coerce(value)
    declared = field_table(kind)[key].type
    optional = "None" in declared
    if value is None and optional:
        return None
    if declared.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise InputError(f"config: {key} must be true or false (got {value!r})")
    if declared.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise InputError(f"config: {key} must be an integer (got {value!r})")
    if declared.startswith("float"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise InputError(f"config: {key} must be a number (got {value!r})")
    if isinstance(value, str | Path):
        return str(value)
    raise InputError(f"config: {key} must be a string (got {value!r})")


def merge_layers(kind: type[AnyConfig], layers: tuple[dict[str, Any], ...]) -> AnyConfig:
    """A ``kind`` config from option layers (later wins; ``None`` means "not given"), validated.

    Unknown keys, wrong types and out-of-range values are one-line errors that
    name the key and what it accepts; then the config's own cross-field check.
    """
    known = field_table(kind)
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in known:
                raise InputError(f"config: unknown key {key!r} (known keys: {', '.join(known)})")
            if value is not None:
                merged[key] = _coerce(key, value, kind)
    for key, value in merged.items():
        check = known[key].metadata["check"]
        if check is not None and value is not None and not check(value):
            accepted = known[key].metadata["accepted"]
            raise InputError(f"config: {key} must be {accepted} (got {value!r})")
    config = kind(**merged)
    config.check()
    return config


def to_yaml(config: Any) -> str:
    """A config as flat YAML, keys in declaration order (tuples as lists)."""
    data = {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(config).items()}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file with ``yaml.safe_load`` (no arbitrary objects)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0]
        raise InputError(f"config {path} is not valid YAML: {detail}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InputError(f"config {path} must be a mapping of option names to values")
    return data
