"""``sweep``: search the head's hyper-parameters on cached features, resumably.

The story: check the sweep directory; read the features through ``train``'s
cache; assign folds (k-fold over every usable image, or ``train``'s own split
with ``--folds 1``); then each Optuna trial draws settings
(:mod:`~resnet_ft.tuning.space`), trains one head per fold with ``train``'s
loop (:mod:`~resnet_ft.tuning.fit`) and scores the mean over folds. A median
pruner stops trials whose epochs fall behind earlier trials'. After every
trial ``trials.csv`` and ``best.yaml`` are rewritten; at the end the score
plot. A kill loses at most the running trial (:mod:`~resnet_ft.tuning.study`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console

from resnet_ft.errors import InputError
from resnet_ft.training.config import TrainConfig
from resnet_ft.training.loop import Interrupted
from resnet_ft.training.plan import plan_inputs
from resnet_ft.training.state import LOCK_FILE, run_lock
from resnet_ft.tuning.features import LabelledFeatures, load_features
from resnet_ft.tuning.fit import Fit, cross_validate
from resnet_ft.tuning.folds import stratified_folds
from resnet_ft.tuning.plot import plot_scores
from resnet_ft.tuning.records import (
    SETTINGS_FILE,
    absolute_paths,
    best_config,
    read_settings,
    write_records,
    write_settings,
)
from resnet_ft.tuning.space import suggest
from resnet_ft.tuning.study import STUDY_DB, counted, open_study

METRICS = ("accuracy", "loss")
PLOT_FILE = "importance.png"
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


def sweep(config: TrainConfig, sweep_dir: str | Path, *, trials: int = 20, folds: int = 3,
          metric: str = "accuracy", resume: bool = False, overwrite: bool = False,
          console: Console | None = None) -> SweepResult:
    """Run (or resume) a sweep of ``trials`` counted trials into ``sweep_dir``."""
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
        search = _Search(config, data, folds, metric, sweep_dir, console)
        study = open_study(sweep_dir, "maximize" if metric == "accuracy" else "minimize",
                           config.seed, resume=resume)
        search.run(study, trials)
    return search.result(study, trials)


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


class _Search:
    """The objective and the bookkeeping of one sweep process."""

    def __init__(self, config: TrainConfig, data: LabelledFeatures, folds: int, metric: str,
                 sweep_dir: Path, console: Console) -> None:
        self.config, self.metric, self.sweep_dir, self.console = config, metric, sweep_dir, console
        usable = data.usable
        self.features, self.labels = data.values[usable], data.labels[usable]
        self.classes = len(data.split.labels)
        self.folds = _assign_folds(data, folds, config.seed)
        self.extracted = data.extracted
        self.durations: list[float] = []
        self.axes: list[str] = []

    def run(self, study: Any, trials: int) -> None:
        remaining = trials - len(counted(study))
        if remaining <= 0:
            self.console.print(f"{len(counted(study))} trials already done")
            return
        try:
            study.optimize(self.objective, n_trials=remaining,
                           callbacks=[lambda s, t: self.after_trial(s, trials)])
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; {len(counted(study))} finished trials kept. Resume with: "
                f"resnet-ft sweep -o {self.sweep_dir} --resume") from None
        self.finish(study)

    def objective(self, trial: Any) -> float:
        import optuna

        started = time.perf_counter()
        config = best_config(self.config, suggest(trial))
        reported: dict[int, int] = {}

        def after_epoch(fold: int, state: dict[str, Any]) -> None:
            reported[fold] = state["epoch"]
            trial.report(_score(state, self.metric), step=fold * 1000 + state["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {fold + 1}, epoch {state['epoch']}")

        try:
            fits = cross_validate(config, self.classes, self.features, self.labels,
                                  self.folds, after_epoch)
        except optuna.TrialPruned:
            trial.set_user_attr("folds_done", len(reported) - 1)
            trial.set_user_attr("seconds", time.perf_counter() - started)
            raise
        self._record(trial, fits, time.perf_counter() - started)
        return trial.user_attrs["score_mean"]

    def _record(self, trial: Any, fits: list[Fit], seconds: float) -> None:
        accuracy = np.array([f.val_accuracy for f in fits])
        loss = np.array([f.val_loss for f in fits])
        score = accuracy if self.metric == "accuracy" else loss
        for name, values in (("score", score), ("accuracy", accuracy), ("val_loss", loss)):
            trial.set_user_attr(f"{name}_mean", float(values.mean()))
            trial.set_user_attr(f"{name}_std", float(values.std()))
        trial.set_user_attr("folds_done", len(fits))
        trial.set_user_attr("best_epochs", [f.best_epoch for f in fits])
        trial.set_user_attr("seconds", seconds)

    def after_trial(self, study: Any, trials: int) -> None:
        """Progress line (done, best so far, ETA) and fresh ``trials.csv``/``best.yaml``."""
        finished = study.get_trials(deepcopy=False)[-1]
        self.durations.append(finished.user_attrs.get("seconds", 0.0))
        done = len(counted(study))
        best = _best(study)
        write_records(self.sweep_dir, study.get_trials(deepcopy=False),
                      best_config(self.config, best.params) if best else None)
        eta = np.mean(self.durations) * max(trials - done, 0)
        value = finished.user_attrs.get("score_mean")
        score = (f"{self.metric} {value:.4f} ± {finished.user_attrs['score_std']:.4f}"
                 if value is not None else finished.state.name.lower())
        leader = (f"best {best.value:.4f} (trial {best.number})" if best else "no best yet")
        self.console.print(f"trial {done}/{trials} (#{finished.number}): {score}  |  {leader}"
                           f"  |  ETA {_duration(eta)}")

    def finish(self, study: Any) -> None:
        from optuna.trial import TrialState

        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = _best(study)
        write_records(self.sweep_dir, study.get_trials(deepcopy=False),
                      best_config(self.config, best.params) if best else None)
        if completed:
            self.axes = plot_scores(study, completed, self.sweep_dir / PLOT_FILE, self.metric)

    def result(self, study: Any, trials: int) -> SweepResult:
        best = _best(study)
        return SweepResult(
            self.sweep_dir, self.metric, len(counted(study)),
            best.number if best else None, best.value if best else None,
            dict(best.params) if best else {}, self.axes, self.extracted)


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


def _score(state: dict[str, Any], metric: str) -> float:
    """The fold's score so far: ``train``'s best epoch (lowest val_loss), its accuracy or loss."""
    if metric == "loss":
        return float(state["best_val_loss"])
    return float(state["history"][state["best_epoch"] - 1]["val_accuracy"])


def _best(study: Any) -> Any:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"

