"""What a sweep leaves besides its study: ``trials.csv``, ``best.yaml``, ``sweep.yaml``.

All rewritten atomically after every trial, so a killed sweep still has
current files. ``best.yaml`` is a complete ``train`` config (the sweep's base
config with the best trial's settings, paths made absolute), so
``train --config SWEEP_DIR/best.yaml -o RUN_DIR`` runs the best trial's head
on the whole training split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from resnet_ft.config import TrainConfig, make_config
from resnet_ft.presets.catalog import looks_like_preset
from resnet_ft.tuning.space import PARAMETERS
from resnet_ft.util.atomic import write_text
from resnet_ft.util.tables import csv_text

SCORES = ("score_mean", "score_std", "accuracy_mean", "accuracy_std", "val_loss_mean",
          "val_loss_std")
#: The best trial's scores from ``train``'s own loop (:mod:`~resnet_ft.training.crossval.exact`).
CONFIRMED_FIELDS = ("score_mean", "accuracy_mean", "val_loss_mean", "best_epochs")
TRIAL_FIELDS = ("number", "state", *PARAMETERS, *SCORES, "folds_done", "epochs_done",
                "best_epochs", "seconds", "retry_of",
                *(f"confirmed_{name}" for name in CONFIRMED_FIELDS), "failure")
SETTINGS_FILE = "sweep.yaml"
#: The study's user attribute holding the confirmation of its best trial.
CONFIRMED = "confirmed"


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """The config with its file and folder paths absolute: valid from any directory.

    A preset name (``--backbone slim/resnet_v1_101``) is a name, not a path: it is kept.
    """
    changes = {f.name: str(Path(value).resolve())
               for f in dataclasses.fields(config)
               if f.metadata["path"] and (value := getattr(config, f.name))
               and not looks_like_preset(value)}
    return dataclasses.replace(config, **changes)


def best_config(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """The base config with a trial's settings applied (validated like any config)."""
    data = dataclasses.asdict(base)
    data["augment"] = list(base.augment)
    return make_config(data, params)


def trials_csv(trials: list[Any], confirmed: dict[str, Any] | None = None) -> str:
    """One row per trial: number, state, settings, score mean/spread, folds and epochs
    done, time; the confirmed trial's row also has its scores from ``train``'s loop."""
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        attrs = trial.user_attrs
        check = confirmed if confirmed and confirmed["number"] == trial.number else {}
        rows.append([trial.number, trial.state.name.lower(),
                     *(trial.params.get(p, "") for p in PARAMETERS),
                     *(_number(attrs.get(s)) for s in SCORES),
                     attrs.get("folds_done", ""), attrs.get("epochs_done", ""),
                     _epochs(attrs.get("best_epochs", [])),
                     _number(attrs.get("seconds")), attrs.get("retry_of", ""),
                     *(_number(check.get(s)) for s in CONFIRMED_FIELDS[:-1]),
                     _epochs(check.get("best_epochs", [])), attrs.get("failure", "")])
    return csv_text(TRIAL_FIELDS, rows)


def _epochs(values: list[int]) -> str:
    return " ".join(str(e) for e in values)


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.6g}"


def write_records(sweep_dir: Path, trials: list[Any], best: TrainConfig | None,
                  confirmed: dict[str, Any] | None = None) -> None:
    """``trials.csv`` and, once a trial has completed, ``best.yaml`` (a comment on top
    gives the confirmed score when the best trial has been confirmed)."""
    write_text(sweep_dir / "trials.csv", trials_csv(trials, confirmed))
    if best is not None:
        header = ""
        if confirmed:
            header = (f"# trial {confirmed['number']}, trained by train's own loop on the "
                      f"sweep's folds: accuracy {confirmed['accuracy_mean']:.4f}, val_loss "
                      f"{confirmed['val_loss_mean']:.4f}\n")
        write_text(sweep_dir / "best.yaml", header + best.to_yaml())


def write_settings(sweep_dir: Path, base: TrainConfig, sweep: dict[str, Any]) -> None:
    """``sweep.yaml``: the base config and the sweep's own settings, for ``--resume``."""
    text = yaml.safe_dump({"sweep": sweep, "config": yaml.safe_load(base.to_yaml())},
                          sort_keys=False, allow_unicode=True)
    write_text(sweep_dir / SETTINGS_FILE, text)


def read_settings(sweep_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(sweep settings, base config mapping)`` of the sweep in ``sweep_dir``."""
    data = yaml.safe_load((sweep_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    return data["sweep"], data["config"]
