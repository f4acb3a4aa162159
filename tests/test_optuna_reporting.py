"""Reporting from a job to its Optuna trial (hydra_plugins.navitune_optuna.reporting)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from hydra_plugins.navitune_optuna.reporting import TrialReporter

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_reports_reach_the_trial_and_the_pruner_decides() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=10.0))
    trial = study.ask()
    reporter = TrialReporter(study, optuna.trial.Trial(study, trial._trial_id))
    assert reporter.report(0, 12.0) is False
    assert reporter.report(1, 5.0) is True  # below the threshold: stop
    assert study.trials[0].intermediate_values == {0: 12.0, 1: 5.0}


def test_a_job_whose_trial_was_finished_by_another_sweeper_carries_on() -> None:
    """A job re-attached after its sweeper died reports to a trial the new sweeper has failed."""
    study = optuna.create_study()
    trial = study.ask()
    reporter = TrialReporter(study, optuna.trial.Trial(study, trial._trial_id))
    study.tell(trial, state=TrialState.FAIL)
    assert reporter.report(0, 1.0) is False
    assert study.trials[0].intermediate_values == {}
