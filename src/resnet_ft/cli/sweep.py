"""``resnet-ft sweep``: hyper-parameter search for the head, on cached features.

The data and preprocessing options are ``train``'s own (generated from the
same ``TrainConfig`` fields), so the sweep reads the feature cache ``train``
fills, and ``best.yaml`` is a ``train`` config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from resnet_ft.cli.options import Extra, command, config_layer
from resnet_ft.config import TrainConfig

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
_OUT = Extra("out", Path, typer.Option("-o", "--out", help="Sweep directory to write."))
OWN_OPTIONS = (
    Extra("trials", int | None, typer.Option(help="Trials to finish, pruned ones included [20; "
                                                  "resumed: the sweep's]."), None),
    Extra("folds", int | None, typer.Option(help="k-fold cross-validation over all images; 1: "
                                                 "train's validation split [3]."), None),
    Extra("metric", str | None, typer.Option(help="accuracy (maximised) or loss (minimised), of "
                                                  "train's best epoch [accuracy]."), None),
    Extra("config", Path | None, typer.Option(help="YAML file with train options."), None),
    Extra("resume", bool, typer.Option(help="Continue an interrupted sweep."), False),
    Extra("overwrite", bool, typer.Option(help="Replace the sweep directory's sweep."), False),
)


@command(TrainConfig, only=DATA_OPTIONS, first=(_OUT,), last=OWN_OPTIONS, panels=False)
def sweep(**options: Any) -> None:
    """Search learning rate, dropout, units, smoothing, decay, optimizer, epochs, weighting."""
    from resnet_ft.cli.render import console
    from resnet_ft.config import load_yaml, make_config
    from resnet_ft.tuning.records import SETTINGS_FILE, read_settings
    from resnet_ft.tuning.run import sweep as run_sweep

    out = options["out"]
    layers = [load_yaml(options["config"])] if options["config"] else []
    stored: dict[str, Any] = {}
    if options["resume"] and (out / SETTINGS_FILE).is_file():
        stored, base = read_settings(out)
        layers = layers or [base]
    config = make_config(*layers, config_layer(options, TrainConfig))
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
