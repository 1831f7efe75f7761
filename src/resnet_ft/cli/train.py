"""``resnet-ft train``: its options are generated from :class:`TrainConfig`'s fields.

Every config field becomes an option (or a positional argument, in the
order of the class's ``ARGUMENTS``) with the field's help text and its real
default, read from the dataclass, so the CLI can never drift from the config.
Options default to "not given" (``None``) so that a YAML ``--config`` layer
can set them and the command line wins only where it says something.
``distill`` is generated the same way from :class:`DistillConfig`
(:func:`config_signature`, :func:`resolve_config`).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from resnet_ft.training.config import TrainConfig, make_config

EPILOG = (
    "Examples:\n\n"
    "  resnet-ft train flower_photos --backbone backbone.keras -o runs/flowers\n\n"
    "  resnet-ft train --config examples/flowers/config.yaml -o runs/flowers --epochs 5\n\n"
    "  resnet-ft train --config runs/flowers/config.yaml -o runs/flowers --resume"
)
#: Options of the command that are not config fields: where to write and how.
_RUN_OPTIONS: list[tuple[str, Any, Any]] = [
    ("out", Path, typer.Option("-o", "--out", help="Run directory to write.")),
    ("config", Path | None, typer.Option(help="YAML file with any of these options.")),
    ("resume", bool, typer.Option(help="Continue an interrupted run.")),
    ("overwrite", bool, typer.Option(help="Replace a non-empty run directory.")),
]
_RUN_DEFAULTS = {"out": inspect.Parameter.empty, "config": None, "resume": False,
                 "overwrite": False}


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


def _field_parameters(field: dataclasses.Field) -> list[inspect.Parameter]:
    """The command-line parameters that set one config field."""
    meta, name = field.metadata, field.name
    kind = Path if meta["path"] else {"int": int, "float": float}.get(
        str(field.type).split(" ")[0], str)
    params = []
    if meta["cli"] == "argument":
        params.append(_param(name, kind | None, typer.Argument(help=option_help(field)), None))
    elif meta["cli"] == "flag":
        flag = typer.Option(f"--{name.replace('_', '-')}", help=option_help(field))
        params.append(_param(name, bool | None, flag, None))
    elif meta["cli"] == "option":
        names = [f"--{meta['flag']}"] if meta.get("flag") else []
        params.append(_param(name, kind | None,
                             typer.Option(*names, help=option_help(field)), None))
    if meta["off"] is not None:
        off = typer.Option(f"--no-{name.replace('_', '-')}", help=f"{meta['off'][0]}.")
        params.append(_param(f"no_{name}", bool, off, False))
    return params


def _param(name: str, kind: Any, info: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, info])


def config_layer(options: dict[str, Any], kind: type[TrainConfig] = TrainConfig
                 ) -> dict[str, Any]:
    """The config values the command line gave (``--no-X`` included); others left out."""
    layer: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        if options.get(field.name) is not None:
            layer[field.name] = options[field.name]
        if field.metadata["off"] is not None and options.get(f"no_{field.name}"):
            layer[field.name] = field.metadata["off"][1]
    return layer


def resolve_config(options: dict[str, Any], kind: type[TrainConfig] = TrainConfig) -> Any:
    """The run's config: ``--config`` (or, resuming, the run's own config.yaml), then the CLI."""
    from resnet_ft.training.config import load_yaml

    out, config, resume = options["out"], options["config"], options["resume"]
    layers = [load_yaml(config)] if config else []
    if resume and not config and (out / "config.yaml").is_file():
        layers = [load_yaml(out / "config.yaml")]
    return make_config(*layers, config_layer(options, kind), kind=kind)


def train(**options: Any) -> None:
    """Fine-tune a new head on a frozen backbone over a class-per-folder image set."""
    from resnet_ft.cli.render import console
    from resnet_ft.training.run import train as run_train

    result = run_train(resolve_config(options), options["out"], resume=options["resume"],
                       overwrite=options["overwrite"], console=console())
    print_result(result)


def print_result(result: Any) -> None:
    """The closing line: best epoch, its accuracy and loss, where the model is."""
    from resnet_ft.cli.render import console

    metrics = result.metrics
    console().print(
        f"best epoch {metrics['best_epoch']}: val_accuracy {metrics['accuracy']:.4f}, "
        f"val_loss {metrics['val_loss']:.4f}; model written to {result.run_dir / 'model.keras'}"
    )
    if "pruning" in metrics:
        console().print(pruning_line(metrics["pruning"]))


def pruning_line(report: dict[str, Any]) -> str:
    """Hidden units, parameters, file size and accuracy before -> after pruning."""
    return (f"pruned head: {report['units_before']} -> {report['units_after']} hidden units, "
            f"{report['parameters_before']:,} -> {report['parameters_after']:,} parameters, "
            f"model.keras {report['file_bytes_before'] / 1e6:.1f} -> "
            f"{report['file_bytes_after'] / 1e6:.1f} MB, val_accuracy "
            f"{report['accuracy_before']:.4f} -> {report['accuracy_after']:.4f}")


def config_signature(kind: type[TrainConfig]) -> inspect.Signature:
    """The command's parameters: arguments (``kind.ARGUMENTS`` order), -o, options, run flags."""
    run = [_param(name, type_, info, _RUN_DEFAULTS[name])
           for name, type_, info in _RUN_OPTIONS]
    fields = {f.name: _field_parameters(f) for f in dataclasses.fields(kind)}
    arguments = [p for name in kind.ARGUMENTS for p in fields.pop(name)]
    options = [p for params in fields.values() for p in params]
    return inspect.Signature([*arguments, run[0], *options, *run[1:]])


def with_signature(command: Any, kind: type[TrainConfig]) -> None:
    """Give ``command(**options)`` the generated parameters typer reads."""
    command.__signature__ = config_signature(kind)
    command.__annotations__ = {p.name: p.annotation
                               for p in command.__signature__.parameters.values()}


with_signature(train, TrainConfig)
