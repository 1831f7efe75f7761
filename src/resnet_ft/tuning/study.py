"""The sweep's Optuna study in ``SWEEP_DIR/study.db``: created, checked, resumed after a kill.

Optuna's RDB storage commits every trial as it finishes, so a killed sweep
keeps its finished trials. On ``--resume`` the trials the kill left
``RUNNING`` are marked failed and their settings queued again, so the
interrupted trial is retried first and no finished trial is repeated. The
sweep directory is locked while a sweep writes it (:func:`run_lock`), so no
other process can be running those trials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_ft.errors import InputError

STUDY_DB = "study.db"
STUDY_NAME = "sweep"
#: Trials before the median pruner may stop a trial early, and epochs it waits in each.
STARTUP_TRIALS, WARMUP_EPOCHS = 5, 3
#: Epochs between a trial's reports (each is a committed database write, ~10-40 ms).
REPORT_EVERY = 2


def reports(epoch: int) -> bool:
    """Whether a trial reports (and may be pruned) after ``epoch``: the third, fifth, ..."""
    return epoch >= WARMUP_EPOCHS and (epoch - WARMUP_EPOCHS) % REPORT_EVERY == 0


def counted(study: Any) -> list[Any]:
    """Trials that count toward ``--trials``: completed or pruned."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def open_study(sweep_dir: Path, direction: str, seed: int, *, resume: bool,
               prune: bool = True) -> Any:
    """The study in ``sweep_dir`` (new, or the one being resumed), seeded and recovered.

    Trials report the folds' mean score after every epoch (step = epoch); the
    median pruner stops a trial whose score is below the median of earlier
    trials' at the same epoch, once ``STARTUP_TRIALS`` trials have finished and
    after ``WARMUP_EPOCHS`` epochs. ``prune=False`` lets every trial finish.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exists = (sweep_dir / STUDY_DB).is_file()
    if resume and not exists:
        raise InputError(f"--resume: {sweep_dir} holds no sweep ({STUDY_DB} not found)")
    storage = optuna.storages.RDBStorage(f"sqlite:///{(sweep_dir / STUDY_DB).resolve()}")
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction=direction, load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS,
                                           n_warmup_steps=WARMUP_EPOCHS)
        if prune else optuna.pruners.NopPruner())
    _recover(study, storage)
    # a resumed sweep draws on from a seed of its own, still fixed by the seed and its history
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return study


def _recover(study: Any, storage: Any) -> None:
    """Mark trials a kill left running as failed and queue their settings to run again."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(STUDY_NAME)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number},
                            skip_if_exists=False)
