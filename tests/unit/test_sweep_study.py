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
