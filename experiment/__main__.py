"""``python -m experiment`` (console script ``navitune``): check the command line (:mod:`experiment.preflight`),
then compose the config with Hydra and run the task."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from experiment.preflight import CONF_DIR, INFO_FLAGS, pin_as_of, preflight


@hydra.main(
    config_path=CONF_DIR, config_name="config",
    execution_whitelist=["experiment.*", "hydra_plugins.*", "optuna.samplers.*", "optuna.pruners.*"],
)
def task(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from experiment.app import run
    from experiment.tracking.job import track_job
    from experiment.trial import daily_reporter

    job_dir = HydraConfig.get().runtime.output_dir
    with track_job(cfg, job_dir) as tracking:  # an MLflow child run (sweeps) or standalone run; never fails the job
        return run(cfg, job_dir, on_day=tracking.on_day(daily_reporter()))


def main() -> None:
    if sys.argv[1:2] == ["champion"]:  # navitune champion init|show|history|promote|rollback|decide
        from experiment.registry.cli import main as champion

        raise SystemExit(champion(sys.argv[2:]))
    if sys.argv[1:2] == ["retune"]:  # navitune retune [--as-of DATE] [overrides]: one re-tuning cycle
        from experiment.retune.cli import main as retune

        raise SystemExit(retune(sys.argv[2:]))
    problem = preflight(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    sys.argv[1:] = pin_as_of(sys.argv[1:])
    from experiment.registry.resolver import forget_warnings

    forget_warnings()  # the checks above resolved the sweep's baseline before Hydra set logging up
    if not INFO_FLAGS & set(sys.argv[1:]):
        import experiment.app  # noqa: F401  (compiles the simulator here, before a launcher forks jobs)
    task()


if __name__ == "__main__":
    main()
