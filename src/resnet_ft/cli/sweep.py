"""``resnet-ft sweep``: hyper-parameter search for the head, on cached features.

The data and preprocessing options are ``train``'s own (generated from the
same ``TrainConfig`` fields), so the sweep reads the feature cache ``train``
fills, and ``best.yaml`` is a ``train`` config.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.train import _field_parameters, _param, config_layer
from resnet_ft.training.config import TrainConfig

EPILOG = (
    "Examples:\n\n"
    "  resnet-ft sweep flower_photos --backbone backbone.keras -o sweeps/flowers --trials 40\n\n"
    "  resnet-ft sweep -o sweeps/flowers --resume\n\n"
    "  resnet-ft train --config sweeps/flowers/best.yaml -o runs/best"
)
#: The train options a sweep takes: what is searched and which features are read.
DATA_OPTIONS = ("data_dir", "backbone", "val_dir", "image_size", "resize", "cache_dir",
                "precision", "val_split", "seed")
#: The sweep's own settings when neither the command line nor a resumed sweep gives them.
DEFAULTS = {"trials": 20, "folds": 3, "metric": "accuracy"}
_OPTIONS: list[tuple[str, Any, Any, Any]] = [
    ("out", Path, typer.Option("-o", "--out", help="Sweep directory to write."),
     inspect.Parameter.empty),
    ("trials", int | None, typer.Option(help="Trials to finish, pruned ones included [20; "
                                            "resumed: the sweep's]."), None),
    ("folds", int | None, typer.Option(help="k-fold cross-validation over all images; 1: "
                                            "train's validation split [3]."), None),
    ("metric", str | None, typer.Option(help="accuracy (maximised) or loss (minimised), of "
                                             "train's best epoch [accuracy]."), None),
    ("config", Path | None, typer.Option(help="YAML file with train options."), None),
    ("resume", bool, typer.Option(help="Continue an interrupted sweep."), False),
    ("overwrite", bool, typer.Option(help="Replace the sweep directory's sweep."), False),
]


def sweep(**options: Any) -> None:
    """Search learning rate, dropout, units, smoothing, decay, optimizer, epochs, weighting."""
    from resnet_ft.cli.render import console
    from resnet_ft.training.config import load_yaml, make_config
    from resnet_ft.tuning.records import SETTINGS_FILE, read_settings
    from resnet_ft.tuning.run import sweep as run_sweep

    out = options["out"]
    layers = [load_yaml(options["config"])] if options["config"] else []
    stored: dict[str, Any] = {}
    if options["resume"] and (out / SETTINGS_FILE).is_file():
        stored, base = read_settings(out)
        layers = layers or [base]
    config = make_config(*layers, config_layer(options))
    chosen = {name: options[name] if options[name] is not None else stored.get(name, default)
              for name, default in DEFAULTS.items()}
    result = run_sweep(config, out, **chosen, resume=options["resume"],
                       overwrite=options["overwrite"], console=console())
    if result.best_number is None:
        console().print("no trial completed")
        return
    settings = ", ".join(f"{k}={_short(v)}" for k, v in result.best_params.items())
    console().print(f"best trial {result.best_number}: {result.metric} "
                    f"{result.best_score:.4f} ({settings})")
    console().print(f"train it: resnet-ft train --config {out / 'best.yaml'} -o RUN_DIR")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _signature() -> inspect.Signature:
    fields = [p for f in dataclasses.fields(TrainConfig) if f.name in DATA_OPTIONS
              for p in _field_parameters(f)]
    own = [_param(name, kind, info, default) for name, kind, info, default in _OPTIONS]
    return inspect.Signature([own[0], *fields, *own[1:]])


sweep.__signature__ = _signature()  # type: ignore[attr-defined]
sweep.__annotations__ = {p.name: p.annotation for p in sweep.__signature__.parameters.values()}
