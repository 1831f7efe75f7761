"""``sweep``: search the head's hyper-parameters on cached features, resumably.

The story: check the sweep directory; read the features through ``train``'s
cache; assign folds (k-fold over every usable image, or ``train``'s own split
with ``--folds 1``); then each Optuna trial draws settings
(:mod:`~resnet_ft.tuning.space`), trains one head per fold, all folds at once,
with ``train``'s arithmetic (:mod:`~resnet_ft.training.crossval.fit`) and scores the mean
over folds; a median pruner stops trials whose epochs fall behind earlier
trials' (:mod:`~resnet_ft.tuning.search`). After every trial ``trials.csv`` and
``best.yaml`` are rewritten; at the end the best trial is confirmed with
``train``'s own loop, and the score plot drawn. A kill loses at most the
running trial (:mod:`~resnet_ft.tuning.study`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.folds import stratified_folds
from resnet_ft.errors import InputError
from resnet_ft.training.crossval.features import LabelledFeatures, load_features
from resnet_ft.training.plan import plan_inputs
from resnet_ft.training.state import LOCK_FILE, run_lock
from resnet_ft.tuning.records import (
    CONFIRMED,
    SETTINGS_FILE,
    absolute_paths,
    read_settings,
    write_settings,
)
from resnet_ft.tuning.search import PLOT_FILE, Search, best_trial
from resnet_ft.tuning.study import STUDY_DB, counted, open_study

METRICS = ("accuracy", "loss")
SWEEP_FILES = (STUDY_DB, "trials.csv", "best.yaml", SETTINGS_FILE, PLOT_FILE)


@dataclass
class SweepResult:
    """What a finished sweep found."""

    sweep_dir: Path
    metric: str
    trials: int
    best_number: int | None = None
    best_score: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    axes: list[str] = field(default_factory=list)
    extracted: int = 0
    pruned: int = 0
    #: the best trial's scores from ``train``'s own loop (``number``, ``score_mean``, ...)
    confirmed: dict[str, Any] = field(default_factory=dict)


def sweep(config: TrainConfig, sweep_dir: str | Path, *, trials: int = 20, folds: int = 3,
          metric: str = "accuracy", resume: bool = False, overwrite: bool = False,
          prune: bool = True, console: Console | None = None) -> SweepResult:
    """Run (or resume) a sweep of ``trials`` counted trials into ``sweep_dir``.

    ``prune=False`` runs every trial to its end (for measuring; the CLI prunes).
    """
    console = console or Console(stderr=True)
    sweep_dir = Path(sweep_dir)
    config = absolute_paths(config)
    settings = _check(config, trials, folds, metric)
    _prepare(sweep_dir, resume=resume, overwrite=overwrite)
    with run_lock(sweep_dir):
        if resume:
            _same_sweep(sweep_dir, config, settings)
        write_settings(sweep_dir, config, settings)
        data = load_features(config, plan_inputs(config).views, console)
        if data.errors:
            console.print(f"skipping {len(data.errors)} file(s) that cannot be decoded")
        usable = data.usable
        search = Search(config, np.asarray(data.values[usable], np.float32),
                        data.labels[usable], len(data.split.labels),
                        _assign_folds(data, folds, config.seed), metric, sweep_dir, console)
        study = open_study(sweep_dir, "maximize" if metric == "accuracy" else "minimize",
                           config.seed, resume=resume, prune=prune)
        search.run(study, trials)
    return _result(study, search, data.extracted)


def _check(config: TrainConfig, trials: int, folds: int, metric: str) -> dict[str, Any]:
    if config.trainable != "head":
        raise InputError("sweep tunes the head on cached features: trainable must be head")
    if not config.cacheable:
        raise InputError("sweep trains on cached features: augment must be flip or none")
    if trials < 1 or folds < 1:
        raise InputError("--trials and --folds must be at least 1")
    if metric not in METRICS:
        raise InputError(f"--metric must be one of {', '.join(METRICS)} (got {metric!r})")
    return {"folds": folds, "metric": metric, "trials": trials}


def _prepare(sweep_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new sweep into an old one unless told to (as ``train`` does)."""
    if resume or not sweep_dir.exists():
        return
    if any(p.name != LOCK_FILE for p in sweep_dir.iterdir()):
        if not overwrite:
            raise InputError(f"sweep directory {sweep_dir} is not empty; use --resume to "
                             "continue it or --overwrite to replace it")
        for name in SWEEP_FILES:
            (sweep_dir / name).unlink(missing_ok=True)


def _same_sweep(sweep_dir: Path, config: TrainConfig, settings: dict[str, Any]) -> None:
    """A resumed sweep must search the same data, base config, folds and metric."""
    try:
        stored, base = read_settings(sweep_dir)
    except (OSError, KeyError, TypeError) as exc:
        raise InputError(f"--resume: {sweep_dir / SETTINGS_FILE} is missing or damaged") from exc
    current = yaml.safe_load(config.to_yaml())
    differ = [k for k in ("folds", "metric") if stored.get(k) != settings[k]]
    differ += [k for k in current if base.get(k) != current[k]]
    if differ:
        raise InputError(f"--resume: the sweep in {sweep_dir} was started with other "
                         f"settings ({', '.join(differ)}); use the same options or a new -o")


def _assign_folds(data: LabelledFeatures, folds: int, seed: int) -> np.ndarray:
    """Fold per usable sample: ``train``'s split (validation = fold 0) or stratified k-fold."""
    usable = data.usable
    labels = data.labels[usable]
    if folds == 1:
        held = data.in_val[usable]
        if not held.any():
            raise InputError("--folds 1 needs validation images; add images or raise "
                             "--val-split")
        return np.where(held, 0, -1)
    smallest = np.bincount(labels, minlength=len(data.split.labels)).min()
    if smallest < folds:
        raise InputError(f"--folds {folds} needs at least {folds} usable images per class "
                         f"(the smallest class has {smallest})")
    return stratified_folds(labels, folds, seed)


def _result(study: Any, search: Search, extracted: int) -> SweepResult:
    best = best_trial(study)
    return SweepResult(
        search.sweep_dir, search.metric, len(counted(study)),
        best.number if best else None, best.value if best else None,
        dict(best.params) if best else {}, search.axes, extracted,
        sum(t.state.name == "PRUNED" for t in study.get_trials(deepcopy=False)),
        dict(study.user_attrs.get(CONFIRMED, {})))
