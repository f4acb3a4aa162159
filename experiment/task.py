"""The Hydra task: one simulation, as a single run (``python -m experiment``) or as a job of a sweep (``-m``).

It lives apart from the command line (:mod:`experiment.__main__`) so that the commands that run a sweep in
their own process (``navitune retune``) call it without importing the dispatcher that imports them.
``hydra.job.name`` is set in ``conf/config.yaml`` (``navitune``), so moving the task here did not rename
anything Hydra derives from the task's module.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiment.preflight import CONF_DIR
from experiment.tracking.job import track_job
from experiment.trial import daily_reporter


@hydra.main(
    config_path=CONF_DIR, config_name="config",
    execution_whitelist=["experiment.*", "hydra_plugins.*", "optuna.samplers.*", "optuna.pruners.*"],
)
def task(cfg: DictConfig) -> float:
    # imported here: experiment.app loads the compiled simulator (seconds), which a command that only checks,
    # prints help or dispatches must not pay; the CLI imports it before a launcher forks jobs
    from experiment.app import run

    job_dir = HydraConfig.get().runtime.output_dir
    with track_job(cfg, job_dir) as tracking:  # an MLflow child run (sweeps) or standalone run; never fails the job
        return run(cfg, job_dir, on_day=tracking.on_day(daily_reporter()))
