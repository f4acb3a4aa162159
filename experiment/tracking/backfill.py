"""Child runs made whole from the Optuna study when a sweep ends (called by the sweep callback, MLflow reachable).

The study is the source of truth; MLflow may have missed part of a sweep:

* **a trial without a run**: its job ran while MLflow was down or tracking was off, or its process died before
  it could log. A run is created from the study (parameters incl. fixed ones, objective, state, the values
  reported after each day), tagged ``navitune.backfilled=true``; the job's own metrics are not known here.
  Trials stopped with a sweep (``navitune:stopped``) never produced anything and get none.
* **a run its job left RUNNING**: MLflow went away while the job ran (killed, restarted, unreachable), so the
  job could not end its run. Without this the run would stay RUNNING forever, without an objective. It is
  completed from the study, tagged ``navitune.completed_from_study=true``: the trial's state, the run's status
  (FINISHED for COMPLETE or PRUNED, FAILED for FAIL, KILLED for a trial stopped with its sweep), the objective,
  the daily values it misses, and, when the job's ``summary.json`` is still in its job directory (local
  launchers), the job's results and daily revenue.

Nothing here imports ``mlflow`` or ``optuna`` at module level.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from hydra_plugins.navitune_shared.protocol import ATTEMPT, OVER_BUDGET, RETRY_OF, STOPPED

from experiment.tracking import common
from experiment.tracking.common import PARENT_TAG, ROLE_TAG

log = logging.getLogger("navitune.tracking")

COMPLETED_TAG = "navitune.completed_from_study"


def outcome(trial: Any) -> tuple[str, str] | None:
    """(``navitune.state`` tag, MLflow run status) of a finished trial; None while it is not finished."""
    from optuna.trial import TrialState

    done = {TrialState.COMPLETE: ("COMPLETE", "FINISHED"), TrialState.PRUNED: ("PRUNED", "FINISHED"),
            TrialState.FAIL: ("FAIL", "FAILED")}
    if trial.state not in done:
        return None
    state, status = done[trial.state]
    return state, "KILLED" if trial.user_attrs.get(STOPPED) else status


def backfill(client: Any, exp_id: str, parent: str, study: Any, config: DictConfig) -> tuple[int, int]:
    """Add the runs the study's finished trials lack and complete the ones their jobs left RUNNING;
    returns (added, completed)."""
    trials = [t for t in study.get_trials(deepcopy=False)
              if outcome(t) is not None and not t.user_attrs.get(OVER_BUDGET)]
    if not trials:
        return 0, 0
    by_trial: dict[str, list[Any]] = {}
    for run in common.trial_runs(client, exp_id, study.study_name):
        by_trial.setdefault(run.data.tags.get("navitune.trial"), []).append(run)
    missing = [t for t in trials if str(t.number) not in by_trial and not t.user_attrs.get(STOPPED)]
    unfinished = [(t, r) for t in trials for r in by_trial.get(str(t.number), [])
                  if r.info.status == "RUNNING" and r.info.lifecycle_stage == "active"]
    if missing:
        swept = [str(k) for k in (OmegaConf.select(config, "hydra.sweeper.params") or {})]
        from experiment.tracking.job import job_params

        for t in missing:
            add_run(client, exp_id, parent, study.study_name, t, job_params(config, swept, t.number), swept)
        log.info("MLflow: %d trial(s) without a child run (tracking off or unavailable when they ran) "
                 "added from the study", len(missing))
    for t, run in unfinished:
        complete_run(client, run, t)
    if unfinished:
        log.info("MLflow: %d child run(s) left RUNNING (MLflow unreachable when their jobs ended) completed "
                 "from the study", len(unfinished))
    return len(missing), len(unfinished)


def _millis(when: Any) -> int | None:
    return int(when.timestamp() * 1000) if when else None


def _objective(trial: Any) -> list[tuple[str, float, int]]:
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE and trial.values is not None and len(trial.values) == 1:
        return [(common.OBJECTIVE_METRIC, float(trial.values[0]), 0)]
    return []


def add_run(client: Any, exp_id: str, parent: str, study: str, t: Any, base: dict[str, Any],
            swept: list[str]) -> None:
    """A child run for a trial that has none, built from the study."""
    from experiment.tracking.job import SO_FAR

    state, status = outcome(t) or ("FAIL", "FAILED")
    attempt = int(t.user_attrs.get(ATTEMPT, 0))
    origin = int(t.user_attrs.get(RETRY_OF, t.number))
    tags = {ROLE_TAG: "trial", PARENT_TAG: parent, "navitune.state": state, "navitune.backfilled": "true",
            **common.trial_tags(study, t.number, attempt, origin)}
    run = client.create_run(exp_id, start_time=_millis(t.datetime_start),
                            run_name=common.trial_run_name(t.number, attempt, state),
                            tags={k: common.mask(v) for k, v in tags.items() if v is not None})
    # hydra-optuna-sweeper keeps the values of the search space's fixed keys as user attributes
    fixed = {k: t.user_attrs[k] for k in swept if k in t.user_attrs}
    metrics = [(SO_FAR, float(v), int(step)) for step, v in sorted(t.intermediate_values.items())]
    try:
        common.log_batch(client, run.info.run_id, params={**base, **fixed, **t.params}, metrics=metrics + _objective(t))
    finally:  # never a run left RUNNING
        client.set_terminated(run.info.run_id, status, end_time=_millis(t.datetime_complete))


def complete_run(client: Any, run: Any, t: Any) -> None:
    """End a run its job left RUNNING, with what the study (and the job's summary, if still there) knows and
    the run does not have yet: no metric value is logged twice."""
    from experiment.tracking.job import SO_FAR, summary_metrics

    state, status = outcome(t) or ("FAIL", "FAILED")
    run_id, logged = run.info.run_id, run.data.metrics
    try:
        reported = {int(m.step) for m in client.get_metric_history(run_id, SO_FAR)} if SO_FAR in logged else set()
        metrics = [(SO_FAR, float(v), int(step)) for step, v in sorted(t.intermediate_values.items())
                   if int(step) not in reported]
        metrics += [m for m in _objective(t) if m[0] not in logged]
        summary_path = _summary(run, state)
        if summary_path is not None:
            from_job = summary_metrics(json.loads(summary_path.read_text()))  # incl. the daily revenue
            metrics += [m for m in from_job if m[0] not in logged and m[0] != common.OBJECTIVE_METRIC]
        common.log_batch(client, run_id, tags={"navitune.state": state, COMPLETED_TAG: "true"}, metrics=metrics)
        if state == "PRUNED":
            client.update_run(run_id, name=common.trial_run_name(t.number, int(t.user_attrs.get(ATTEMPT, 0)), state))
        if summary_path is not None:
            client.log_artifact(run_id, str(summary_path))
    finally:  # never a run left RUNNING
        client.set_terminated(run_id, status, end_time=_millis(t.datetime_complete))


def _summary(run: Any, state: str) -> Path | None:
    """The job's ``summary.json``, if its job directory is on this machine and the trial completed."""
    job_dir = run.data.tags.get("navitune.job_dir")
    if state != "COMPLETE" or not job_dir:
        return None
    path = Path(job_dir) / "summary.json"
    return path if path.is_file() else None
