"""The sweep's study after a kill: a trial left running is retried, never counted twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_ft.errors import InputError
from resnet_ft.tuning.study import counted, open_study


def test_a_trial_left_running_is_failed_and_its_settings_queued_again(tmp_path: Path) -> None:
    """Without recovery, the killed trial would stay RUNNING forever and its settings would
    never be scored; with a wrong recovery a finished trial would be run again."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    study = open_study(tmp_path, "maximize", 0, resume=False)
    space = {"lr": FloatDistribution(1e-5, 1e-2, log=True)}
    done = study.ask(space)
    study.tell(done, 0.5)
    study.ask(space)  # the trial the kill interrupted: RUNNING in the database
    killed = study.get_trials(deepcopy=False)[-1]

    resumed = open_study(tmp_path, "maximize", 0, resume=True)
    states = [t.state for t in resumed.get_trials(deepcopy=False)]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    retry = resumed.get_trials(deepcopy=False)[-1]
    assert retry.system_attrs["fixed_params"] == killed.params  # drawn again when it runs
    assert retry.user_attrs == {"retry_of": killed.number}
    assert [t.number for t in counted(resumed)] == [done.number]


def test_resume_without_a_study_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"holds no sweep \(study.db not found\)"):
        open_study(tmp_path, "maximize", 0, resume=True)


def test_a_diverged_trial_fails_with_its_reason_and_the_sweep_goes_on(tmp_path: Path,
                                                                      monkeypatch) -> None:
    """A trial whose heads go NaN is marked failed (reason in trials.csv); others still run."""
    import csv

    import numpy as np
    from rich.console import Console

    import resnet_ft.tuning.search as search_module
    from resnet_ft.config import make_config
    from resnet_ft.errors import NonFiniteError
    from resnet_ft.training.crossval.fit import Fit

    calls = {"n": 0}

    def cross_validate(config, classes, features, labels, folds, after_epoch, trainer):
        calls["n"] += 1
        if calls["n"] == 1:
            raise NonFiniteError("non-finite validation loss (nan) in fold 2 after epoch 3")
        return [Fit(0.5, 0.75, 1, np.zeros((2, 2)))]

    monkeypatch.setattr(search_module, "cross_validate", cross_validate)
    monkeypatch.setattr(search_module.Search, "confirm", lambda self, study, best: None)
    config = make_config({"data_dir": "d", "backbone": "b"})
    search = search_module.Search(config, np.zeros((4, 1, 8), np.float32), np.array([0, 1] * 2),
                                  2, np.array([0, 0, 1, 1]), "accuracy", tmp_path,
                                  Console(quiet=True))
    study = open_study(tmp_path, "maximize", 0, resume=False)
    search.run(study, 2)
    with (tmp_path / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["state"] for row in rows] == ["fail", "complete", "complete"]
    assert rows[0]["failure"] == "non-finite validation loss (nan) in fold 2 after epoch 3"
    assert rows[1]["failure"] == ""
