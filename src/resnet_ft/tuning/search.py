"""One sweep process: the Optuna objective, progress, records, and the winner's confirmation.

Each trial trains all its folds at once with the compiled trainer
(:func:`~resnet_ft.training.crossval.fit.cross_validate`) and reports the folds' mean
score after every epoch, so the median pruner can end a trial that falls
behind after its first epochs; a pruned trial is recorded as ``pruned`` with
the epochs it ran (``epochs_done``), never as a score. At the end, the best
trial is trained again by ``train``'s own loop (:mod:`~resnet_ft.training.crossval.exact`)
and that confirmed score is recorded beside the search's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.errors import NonFiniteError
from resnet_ft.training.crossval.exact import exact_cross_validate
from resnet_ft.training.crossval.fit import Fit, HeadTrainer, cross_validate
from resnet_ft.training.loop import Interrupted
from resnet_ft.tuning.plot import plot_scores
from resnet_ft.tuning.records import CONFIRMED, best_config, write_records
from resnet_ft.tuning.space import suggest
from resnet_ft.tuning.study import counted, reports

PLOT_FILE = "importance.png"


class Search:
    """The objective and the bookkeeping of one sweep process."""

    def __init__(self, config: TrainConfig, features: np.ndarray, labels: np.ndarray,
                 classes: int, folds: np.ndarray, metric: str, sweep_dir: Path,
                 console: Console) -> None:
        self.config, self.metric, self.sweep_dir, self.console = config, metric, sweep_dir, console
        self.features, self.labels, self.classes, self.folds = features, labels, classes, folds
        self.trainer = HeadTrainer()
        self.durations: list[float] = []
        self.axes: list[str] = []

    def run(self, study: Any, trials: int) -> None:
        """Trials until ``trials`` have finished (failed ones, say diverged, are run again
        with new settings, unless a whole round fails), then the winner's confirmation."""
        if len(counted(study)) >= trials:
            self.console.print(f"{len(counted(study))} trials already done")
        try:
            while (remaining := trials - len(counted(study))) > 0:
                # a diverged trial fails with its reason; the sweep goes on
                study.optimize(self.objective, n_trials=remaining, catch=(NonFiniteError,),
                               callbacks=[lambda s, t: self.after_trial(s, trials)])
                if len(counted(study)) == trials - remaining:
                    break  # every trial of the round failed: more would fail alike
            self.finish(study)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; {len(counted(study))} finished trials kept. Resume with: "
                f"resnet-ft sweep -o {self.sweep_dir} --resume") from None

    def objective(self, trial: Any) -> float:
        import optuna

        started = time.perf_counter()
        config = best_config(self.config, suggest(trial))
        ran = [0]

        def after_epoch(epoch: int, fits: list[Fit]) -> None:
            ran[0] = epoch
            if not reports(epoch):
                return
            trial.report(float(np.mean([_score(f, self.metric) for f in fits])), step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}")

        try:
            fits = cross_validate(config, self.classes, self.features, self.labels,
                                  self.folds, after_epoch, self.trainer)
        except optuna.TrialPruned:
            _set_attrs(trial, {"folds_done": 0, "epochs_done": ran[0],
                               "seconds": time.perf_counter() - started})
            raise
        except NonFiniteError as exc:
            _set_attrs(trial, {"folds_done": 0, "epochs_done": ran[0], "failure": str(exc),
                               "seconds": time.perf_counter() - started})
            raise
        _set_attrs(trial, {**fold_scores(fits, self.metric), "epochs_done": ran[0],
                           "seconds": time.perf_counter() - started})
        return trial.user_attrs["score_mean"]

    def after_trial(self, study: Any, trials: int) -> None:
        """Progress line (done, best so far, ETA) and fresh ``trials.csv``/``best.yaml``."""
        finished = study.get_trials(deepcopy=False)[-1]
        self.durations.append(finished.user_attrs.get("seconds", 0.0))
        done = len(counted(study))
        best = best_trial(study)
        self.write(study, best)
        eta = np.mean(self.durations) * max(trials - done, 0)
        value = finished.user_attrs.get("score_mean")
        score = (f"{self.metric} {value:.4f} ± {finished.user_attrs['score_std']:.4f}"
                 if value is not None else finished.state.name.lower())
        if finished.state.name == "PRUNED":
            score += f" after {finished.user_attrs.get('epochs_done', 0)} epochs"
        if "failure" in finished.user_attrs:
            score += f" ({finished.user_attrs['failure']})"
        leader = (f"best {best.value:.4f} (trial {best.number})" if best else "no best yet")
        self.console.print(f"trial {done}/{trials} (#{finished.number}): {score}  |  {leader}"
                           f"  |  ETA {_duration(eta)}")

    def finish(self, study: Any) -> None:
        """Confirm the winner with ``train``'s loop, then the final records and plot."""
        from optuna.trial import TrialState

        best = best_trial(study)
        if best is not None:
            self.confirm(study, best)
        self.write(study, best)
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if completed:
            self.axes = plot_scores(study, completed, self.sweep_dir / PLOT_FILE, self.metric)

    def confirm(self, study: Any, best: Any) -> None:
        """The best trial's folds trained by ``train``'s own loop (skipped if already done)."""
        if study.user_attrs.get(CONFIRMED, {}).get("number") == best.number:
            return
        self.console.print(f"confirming trial {best.number} with train's own training loop")
        started = time.perf_counter()
        fits = exact_cross_validate(best_config(self.config, best.params), self.classes,
                                    self.features, self.labels, self.folds)
        confirmed = {"number": best.number, **fold_scores(fits, self.metric),
                     "seconds": time.perf_counter() - started}
        study.set_user_attr(CONFIRMED, confirmed)
        self.console.print(f"trial {best.number}: {self.metric} {confirmed['score_mean']:.4f} "
                           f"with train's loop (search: {best.value:.4f}); train --config "
                           "best.yaml reproduces the former")

    def write(self, study: Any, best: Any) -> None:
        write_records(self.sweep_dir, study.get_trials(deepcopy=False),
                      best_config(self.config, best.params) if best else None,
                      study.user_attrs.get(CONFIRMED))


def fold_scores(fits: list[Fit], metric: str) -> dict[str, Any]:
    """Mean and spread over folds of the score, accuracy and val_loss; best epochs."""
    accuracy = np.array([f.val_accuracy for f in fits])
    loss = np.array([f.val_loss for f in fits])
    scores: dict[str, Any] = {}
    for name, values in (("score", loss if metric == "loss" else accuracy),
                         ("accuracy", accuracy), ("val_loss", loss)):
        scores[f"{name}_mean"], scores[f"{name}_std"] = float(values.mean()), float(values.std())
    return {**scores, "folds_done": len(fits), "best_epochs": [f.best_epoch for f in fits]}


def best_trial(study: Any) -> Any:
    """The best completed trial, or None (pruned trials have no score)."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def _set_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _score(fit: Fit, metric: str) -> float:
    """A fold's score: its best epoch's (lowest val_loss, as ``train`` picks) accuracy or loss."""
    return fit.val_loss if metric == "loss" else fit.val_accuracy


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
