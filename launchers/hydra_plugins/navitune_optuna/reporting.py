"""Inside a job: report intermediate values to the Optuna trial the sweeper launched it for.

The sweeper passes the study and trial number through the job's environment; the storage comes from the
job's own Hydra config (so credentials are read from the job's environment, never written down).
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.navitune_shared.protocol import TrialContext


class TrialReporter:
    """``report(step, value)`` records an intermediate value and says whether the trial should stop."""

    def __init__(self, study: Any, trial: Any) -> None:
        self.study = study
        self.trial = trial

    @property
    def number(self) -> int:
        return int(self.trial.number)

    def report(self, step: int, value: float) -> bool:
        """Report; True means "stop, pruned". A trial already finished (a job re-attached after its
        sweeper was lost: the new sweeper failed the old trial and waits for this job's result under a
        new one) takes no more reports, and the job carries on."""
        import optuna

        try:
            self.trial.report(float(value), int(step))
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        return bool(self.trial.should_prune())


def current_trial() -> TrialReporter | None:
    """The trial of this job, or None when the job was not launched by ``optuna_async``."""
    context = TrialContext.from_env()
    number, study_name = context.trial, context.study
    if number is None or study_name is None:
        return None
    import optuna
    from hydra.core.hydra_config import HydraConfig

    from hydra_plugins.navitune_optuna.pruning import make_pruner
    from hydra_plugins.navitune_shared.optuna_internals import trial_by_number
    from hydra_plugins.navitune_shared.storage import shared_storage

    sweeper = HydraConfig.get().sweeper
    pruner = sweeper.get("pruner")
    study = optuna.load_study(
        study_name=study_name,
        storage=shared_storage(sweeper.get("storage")),  # shared with the result the job publishes
        pruner=make_pruner(pruner),
    )
    return TrialReporter(study, trial_by_number(study, int(number)))
