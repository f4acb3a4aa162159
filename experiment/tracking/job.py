"""The run of one job: a child run under the sweep's parent (one per trial attempt), or a standalone run.

The task wraps :func:`experiment.app.run` in :func:`track_job`. The run is created before the simulation
(so a running or crashed trial is visible); at the end come the objective first (MLflow lists metrics in the
order they were first logged), the summary's other metrics, the revenue reported to the Optuna trial after
each day (``revenue_per_driver_day_so_far_yen``, step = day; a killed job's is completed from the study),
the daily revenue (``daily_revenue_per_driver_yen``, step = day), the trial's state (COMPLETE, PRUNED or
FAIL) and the job's config are logged. Every MLflow call goes through a :class:`~.common.Guard`, so tracking
never changes what the job returns or raises.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig, OmegaConf
from hydra_plugins.navitune_shared.protocol import ENV_KFP_RUN_ID, ENV_KFP_RUN_URL, TrialContext

from experiment.tracking import common
from experiment.tracking.common import ENV_EXPERIMENT, ENV_PARENT, PARENT_TAG, ROLE_TAG, UNAVAILABLE, Guard

log = logging.getLogger("navitune.tracking")

SO_FAR = "revenue_per_driver_day_so_far_yen"  # what the trial reports to Optuna after each day
DAILY = "daily_revenue_per_driver_yen"
# the objective (summary.json's objective = revenue_per_driver_day_yen) is logged once, as OBJECTIVE_METRIC
SUMMARY_METRICS = (
    "revenue_per_driver_shift_yen", "occupancy_distance",
    "trips_per_driver_shift", "mean_fare_yen", "km_per_shift", "km_per_trip", "service_rate", "requests",
    "served", "abandoned",
)
FIXED_KEYS = (
    "region.name", "region.drivers", "region.requests_per_hour", "region.network_seed", "demand.source",
    "window.name", "window.start", "window.end", "window.seed", "window.drivers", "window.max_shift_h",
    "policy.name", "policy.navigation", "policy.gamma", "policy.max_wait_min", "policy.compliance", "sink.kind",
)


def job_params(cfg: DictConfig, swept: list[str], trial: int | None = None) -> dict[str, Any]:
    """The trial's parameters (the keys the sweep tunes) and the settings that make a run comparable, under
    their config keys (``policy.gamma`` is the same name in Optuna, Hydra and MLflow). A trial's policy is its
    own (``policy.name=trial-<n>``), tuned from the composed one (``policy.base``, e.g. production)."""
    keys = list(FIXED_KEYS)
    road_weights = OmegaConf.select(cfg, "policy.road_weights")
    if road_weights is not None:
        keys += [f"policy.road_weights.{k}" for k in road_weights]
    out: dict[str, Any] = {}
    for key in dict.fromkeys(keys + swept):
        try:
            value = OmegaConf.select(cfg, key, default=None)
        except Exception:  # an interpolation that cannot be resolved: leave it out
            continue
        if value is not None:
            out[key] = value
    if trial is not None and "policy.name" in out:
        out["policy.base"] = out["policy.name"]
        out["policy.name"] = f"trial-{trial}"
    return out


def summary_metrics(summary: dict[str, Any]) -> list[tuple[str, float, int]]:
    """A job's ``summary.json`` as (key, value, step) metrics: the results, the daily revenue (step = day) and
    the timings (also used to complete a run the job could not end, from the sweep process)."""
    metrics = [(common.OBJECTIVE_METRIC, summary["objective"], 0)] if isinstance(summary.get("objective"),
                                                                                  (int, float)) else []
    metrics += [(k, summary[k], 0) for k in SUMMARY_METRICS if isinstance(summary.get(k), (int, float))]
    metrics += [(DAILY, v, day) for day, v in enumerate(summary.get("daily_revenue_per_driver_yen") or [])]
    metrics += [(f"timing.{k}", v, 0) for k, v in (summary.get("timings_s") or {}).items()]
    return metrics


def _hydra() -> Any:
    """The job's Hydra config, or None when the task is called without Hydra (tests)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


class JobTracker:
    """One MLflow run for one job; does nothing when tracking is off, unavailable, or the config is invalid
    (``run`` then fails with its one-line error)."""

    def __init__(self, cfg: DictConfig, job_dir: Path) -> None:
        self.cfg, self.job_dir = cfg, job_dir
        self.client: Any = None
        self.run_id: str | None = None
        self.guard: Guard | None = None
        self.settings: common.Settings | None = None
        self.role = "run"
        self.exp_id: str | None = None
        self._t0 = time.monotonic()
        self._last_day: int | None = None
        self._name: str | None = None
        self._trial: dict[str, Any] = {}
        self._so_far: list[tuple[str, float, int]] = []  # what the trial reported to the pruner, day by day

    # ------------------------------------------------------------------------------------ start
    def start(self) -> None:
        from hydra.types import RunMode

        from experiment.config import ConfigError

        try:
            s = common.Settings.from_cfg(self.cfg)
        except ConfigError:
            return  # run() validates the whole config and fails with this error in one line
        if s is None:
            return
        parent_env = os.environ.get(ENV_PARENT) or None
        if parent_env == UNAVAILABLE:
            log.debug("MLflow was unavailable when the sweep started (it warned then): this job is not tracked")
            return
        ctx = TrialContext.from_env().as_dict()
        hc = _hydra()
        multirun = bool(parent_env or ctx["study"] is not None or (hc is not None and hc.mode == RunMode.MULTIRUN))
        self.role = "trial" if multirun else "run"
        if ctx["trial"] is not None:
            name = common.trial_run_name(ctx["trial"], ctx["attempt"])
            subject = f"trial {ctx['trial']}"
        elif multirun:
            name = f"job-{hc.job.num}" if hc is not None else "job"
            subject = f"job {hc.job.num}" if hc is not None else "this job"
        else:
            name = f"{self.cfg.region.name}-{self.cfg.policy.name}-{self.cfg.window.name}"
            subject = "this run"
        lost = f"{subject} is not tracked; it runs on"
        if ctx["study"] is not None and multirun:  # the sweep's end makes its run whole from the study
            lost += " (its run is completed from the study when the sweep ends with MLflow reachable)"
        self.settings, self.guard = s, Guard(s, lost)
        g = self.guard
        common.prepare(s)
        g("connecting", common.probe, s, fatal=True)
        self.client = g("opening the tracking store", common.client, s, fatal=True)
        if self.client is None:
            return
        study = ctx["study"]
        if parent_env and os.environ.get(ENV_EXPERIMENT):
            self.exp_id = os.environ[ENV_EXPERIMENT]
        else:
            self.exp_id = g("finding the experiment", common.experiment_id, self.client,
                            common.default_experiment(self.cfg, study, s), s, fatal=True)
        if self.exp_id is None:
            return
        parent = parent_env
        if parent is None and multirun:
            parent = g("finding the sweep's parent run", self._find_parent, hc, study)
        swept = []
        if hc is not None:
            params = OmegaConf.select(hc, "sweeper.params", default=None)
            swept = [str(k) for k in params] if isinstance(params, DictConfig) else []
        tags: dict[str, Any] = {ROLE_TAG: self.role, "navitune.state": "RUNNING", **common.source_tags()}
        if parent:
            tags[PARENT_TAG] = parent
        if study is not None:
            tags |= common.trial_tags(study, ctx["trial"], ctx["attempt"], ctx["origin_trial"])
        kfp = ((ENV_KFP_RUN_ID, "navitune.kfp_run_id"), (ENV_KFP_RUN_URL, "navitune.kfp_run_url"))
        for var, tag in kfp:
            if os.environ.get(var):
                tags[tag] = os.environ[var]
        if hc is not None:
            tags["navitune.job_dir"] = str(self.job_dir)
            # as written (resolve=False): an ${oc.env:...} in an override must stay a reference
            tags["navitune.overrides"] = " ".join(str(o) for o in OmegaConf.to_container(hc.overrides.task,
                                                                                         resolve=False))
        run = g("creating the run", self.client.create_run, self.exp_id, run_name=name,
                tags={k: common.mask(v) for k, v in tags.items() if v is not None}, fatal=True)
        if run is None:
            return
        self.run_id = run.info.run_id
        self._name, self._trial = name, ctx
        g("logging params", common.log_batch, self.client, self.run_id,
          params=job_params(self.cfg, swept, ctx["trial"] if study is not None else None))

    def _find_parent(self, hc: Any, study: str | None) -> str | None:
        """A job that did not inherit the parent's id (a remote job): look the parent up by the sweep's key."""
        if study is None:
            return None
        storage = OmegaConf.select(hc, "sweeper.storage", default=None) if hc is not None else None
        keys = common.sweep_keys(study, None if storage is None else str(storage), None)
        for tag in (common.SWEEP_KEY_TAG, common.STUDY_KEY_TAG):
            runs = common.find_parents(self.client, self.exp_id, tag, keys[tag])
            if runs:
                return str(runs[0].info.run_id)
        return None

    # ------------------------------------------------------------------------------- during
    def on_day(self, inner: Callable[[int, float], bool] | None) -> Callable[[int, float], bool] | None:
        """Wrap the trial's daily reporter: log the value first, so a pruned trial's last day is logged too."""
        if self.run_id is None:
            return inner

        def on_day(day: int, value: float) -> bool:
            self._last_day = day
            self._so_far.append((SO_FAR, float(value), int(day)))  # logged at the end, after the objective
            return inner(day, value) if inner is not None else False

        return on_day

    # ---------------------------------------------------------------------------------- end
    def end(self, error: BaseException | None) -> None:
        if self.run_id is None or self.guard is None:
            return
        g = self.guard
        if error is None:
            state, status = "COMPLETE", "FINISHED"
        elif type(error).__name__ == "TrialPruned":
            state, status = "PRUNED", "FINISHED"
        else:
            state, status = "FAIL", "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        tags: dict[str, Any] = {"navitune.state": state}
        # MLflow lists a run's metrics in the order they were first logged: the objective first, the pruner's
        # series (buffered by on_day) and the bookkeeping after the results
        metrics: list[tuple[str, float, int]] = []
        summary_path = self.job_dir / "summary.json"
        summary: dict[str, Any] | None = None
        if error is None and summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            metrics += summary_metrics(summary)
        metrics += self._so_far
        metrics.append(("job_seconds", time.monotonic() - self._t0, 0))
        if error is not None and state != "PRUNED":
            tags["navitune.error"] = common.first_line(error, 500)
        if state == "PRUNED" and self._last_day is not None:
            metrics.append(("pruned_after_days", self._last_day + 1, 0))
        g("logging the results", common.log_batch, self.client, self.run_id, tags=tags, metrics=metrics)
        g("logging the config", self.client.log_text, self.run_id, common.config_yaml(self.cfg), "config.yaml")
        if summary is not None:
            g("logging summary.json", self.client.log_artifact, self.run_id, str(summary_path))
        g("ending the run", self.client.set_terminated, self.run_id, status)
        if state == "PRUNED" and self._trial.get("trial") is not None:  # visible in the runs table
            g("naming the pruned run", self.client.update_run, self.run_id,
              name=common.trial_run_name(self._trial["trial"], self._trial["attempt"], state))
        if self.role == "run" and not g.off:
            assert self.settings is not None
            log.info("MLflow run: %s", self.settings.ui_url(str(self.exp_id), self.run_id))


@contextmanager
def track_job(cfg: DictConfig, job_dir: str | Path) -> Iterator[JobTracker]:
    """``with track_job(cfg, job_dir) as t: return run(cfg, job_dir, on_day=t.on_day(reporter))``"""
    tracker = JobTracker(cfg, Path(job_dir))
    _safely("start", tracker.start, tracker)
    try:
        yield tracker
    except BaseException as err:
        _safely("end", tracker.end, tracker, err)
        raise
    _safely("end", tracker.end, tracker, None)


def _safely(what: str, fn: Callable[..., None], tracker: JobTracker, *args: Any) -> None:
    """Tracking must never change what the job returns or raises: a bug here costs one warning."""
    try:
        fn(*args)
    except Exception as err:
        log.warning("MLflow tracking could not %s (%s): this run is not (fully) tracked; it runs on",
                    what, common.first_line(err))
        tracker.run_id = None
