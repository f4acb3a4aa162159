"""The contract between the ``optuna_async`` sweeper, the launchers and the jobs, in one place.

Three parties meet in a sweep and none may import another's internals:

* the sweeper (``hydra_plugins.navitune_optuna``) tells each job which trial it runs, through the environment
  variables below (set with ``hydra.job.env_set``), and keeps its bookkeeping in trial and study attributes;
* a launcher (``navitune_process_pool``, ``navitune_kfp``) runs jobs; one that can run them one by one while the
  sweeper keeps asking for trials is an :class:`AsyncLauncher`; the kfp launcher passes its run's id and page on;
* a job (any task; navitune's is ``experiment.app``) reads :meth:`TrialContext.from_env`, reports to its trial,
  and tags what it records with the same names.

Nothing here knows of taxis, and nothing here imports more than the standard library.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

# --------------------------------------------------------------------- environment of a sweep job
#: set by the sweeper for each job: its study, trial number, attempt (0 = first try) and the trial number of
#: the first attempt (its "origin": a retry is a new trial); absent for a single run
ENV_STUDY = "NAVITUNE_OPTUNA_STUDY"
ENV_TRIAL = "NAVITUNE_OPTUNA_TRIAL"
ENV_ATTEMPT = "NAVITUNE_OPTUNA_ATTEMPT"
ENV_ORIGIN = "NAVITUNE_OPTUNA_ORIGIN"
SWEEP_ENV = (ENV_STUDY, ENV_TRIAL, ENV_ATTEMPT, ENV_ORIGIN)
#: set by the kfp launcher inside a job's run: the KFP run id and page, and the experiment's page (sweep side)
ENV_KFP_RUN_ID = "NAVITUNE_KFP_RUN_ID"
ENV_KFP_RUN_URL = "NAVITUNE_KFP_RUN_URL"
ENV_KFP_EXPERIMENT_URL = "NAVITUNE_KFP_EXPERIMENT_URL"
#: where a KFP job writes its result for the component to return
ENV_KFP_RESULT_FILE = "NAVITUNE_KFP_RESULT_FILE"
#: set by the app's MLflow sweep callback (navitune's tracking) for the jobs and callbacks of the sweep: the parent
#: run's id (or "unavailable": MLflow was down at the start), its experiment, its page (tracking=server)
ENV_MLFLOW_PARENT_RUN_ID = "NAVITUNE_MLFLOW_PARENT_RUN_ID"
ENV_MLFLOW_EXPERIMENT_ID = "NAVITUNE_MLFLOW_EXPERIMENT_ID"
ENV_MLFLOW_PARENT_RUN_URL = "NAVITUNE_MLFLOW_PARENT_RUN_URL"


def default_prepare_ahead(n_jobs: int) -> int:
    """A launcher's ``prepare_ahead`` when left null: the more jobs in flight, the more often one ends while the
    next is still being set up (process_pool and kfp share this default)."""
    return 1 + n_jobs // 4

# ------------------------------------------------------------------------------- trial attributes
OWNER = "navitune:owner"  # host:pid of the sweeper running the trial
HEARTBEAT = "navitune:heartbeat"  # the owner's last sign of life (epoch seconds): sweepers before ALIVE
ATTEMPT = "navitune:attempt"  # 0 for a first try, k for the k-th retry
RETRY_OF = "navitune:retry_of"  # the trial number of the first attempt
OVER_BUDGET = "navitune:over_budget"  # a trial asked past the budget by a concurrent sweeper, failed unrun
STOPPED = "navitune:stopped"  # failed because the sweep stopped early, not because the job failed
LAST_ERROR = "navitune:last_error"  # signature of the previous attempt's error (a retry of it carries it)
BASELINE = "navitune:baseline"  # index of the enqueued baseline point a trial runs (0: the first, production)

# ------------------------------------------------------------------------------- study attributes
BASELINE_CLAIM = "navitune:baseline:"  # + digest of the parameters (system attrs): enqueued once per study
SWEEPER_CLAIM = "navitune:sweeper:"  # + ordinal: one per sweeper process that opened the study
LEGACY_BASELINES = "navitune:baselines"  # user attr of studies from before the claims: digests enqueued
ALIVE = "navitune:alive:"  # + owner (host:pid), system attr: the sweeper's last sign of life (epoch seconds)
KFP_RESULT = "navitune:kfp_result:"  # + run name: a remote job's result, read back by the kfp launcher


@dataclass(frozen=True)
class TrialContext:
    """Which trial a job runs, from the environment the sweeper set (every field None for a single run)."""

    study: str | None = None
    trial: int | None = None
    attempt: int | None = None
    origin_trial: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "TrialContext":
        env = os.environ if environ is None else environ

        def number(name: str) -> int | None:
            value = env.get(name) or None
            return None if value is None else int(value)

        return cls(study=env.get(ENV_STUDY) or None, trial=number(ENV_TRIAL), attempt=number(ENV_ATTEMPT),
                   origin_trial=number(ENV_ORIGIN))

    @property
    def in_sweep(self) -> bool:
        return self.trial is not None

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.study, "trial": self.trial, "attempt": self.attempt, "origin_trial": self.origin_trial}


# ------------------------------------------------------------------------------- launcher abilities
@runtime_checkable
class AsyncLauncher(Protocol):
    """A launcher that starts one job at a time and hands back a Future, so an asynchronous sweeper can refill a
    slot the moment a job ends (Hydra's own ``launch`` takes whole batches)."""

    def submit(self, overrides: Sequence[str], job_idx: int) -> "Future[Any]":  # Future[JobReturn]
        ...

    def shutdown(self) -> None:
        ...


@runtime_checkable
class PreparingLauncher(AsyncLauncher, Protocol):
    """An :class:`AsyncLauncher` that sets up ``prepare_ahead`` jobs while its slots are busy; ``prepared`` of
    them wait (the sweeper does not count them as running)."""

    n_jobs: int
    prepare_ahead: int

    @property
    def prepared(self) -> int:
        ...


@runtime_checkable
class CompilingLauncher(Protocol):
    """A launcher that may only compile (kfp ``compile_only``): its jobs return no value, so no trial is made."""

    @property
    def compile_only(self) -> bool:
        ...
