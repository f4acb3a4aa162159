"""The sweep's MLflow parent run, from a Hydra callback (registered in ``conf/config.yaml`` under
``hydra.callbacks.mlflow``; it reads the ``tracking`` group and does nothing with ``tracking=off``).

Why a callback: the sweeper in ``launchers/`` knows nothing of taxis or MLflow, and Hydra calls
``on_multirun_start`` before the sweeper starts any job and ``on_multirun_end`` (in a ``finally``) after the
last one, with any sweep. Why only those two hooks: a callback with ``on_job_start``/``on_job_end`` would
move every job of the process-pool launcher off its fast path; the jobs log their own runs
(:mod:`experiment.tracking.job`) and find the parent through :data:`~.common.ENV_PARENT`, set here before
jobs are forked, or (remote jobs) by the sweep's key tags. With a tracking server, the parent run's UI page goes
to :data:`~.common.ENV_PARENT_URL` for the sweep's other callbacks (the Slack notifier links it).

* start: find the parent run of this study (same study and storage: a resumed sweep reuses it) or create it;
  log the study, region, window, sampler, search space, git commit and dirty flag, the command-line
  overrides and the composed config (interpolations kept: ``${oc.env:...}`` is never resolved into MLflow).
* end: best value and parameters, trial counts, the gain over the production baseline trial, and the sweep
  directory's results (``optimization_results.yaml``, ``best_*.yaml``; the report and plots under ``report/``);
  child runs made whole from the study (:mod:`experiment.tracking.backfill`): one for each trial that has none
  (it ran untracked), and the runs their jobs left RUNNING (MLflow went away mid-job) completed; status
  FINISHED, FAILED (the sweep raised) or KILLED (Ctrl-C).
* ``hydra.launcher.compile_only=true``: no job runs, so nothing is tracked (no store is opened, no parent run).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from experiment.tracking import common
from experiment.tracking.common import (ENV_EXPERIMENT, ENV_PARENT, ENV_PARENT_URL, OBJECTIVE_METRIC, ROLE_TAG,
                                       UNAVAILABLE, Guard)

log = logging.getLogger("navitune.tracking")

SWEEP_FIXED_KEYS = (
    "region.name", "region.drivers", "demand.source", "window.name", "window.start", "window.end", "window.seed",
    "window.drivers", "window.max_shift_h", "policy.name", "sink.kind",
)


def _select(config: DictConfig, key: str, resolve: bool = True) -> Any:
    """The value at ``key`` as plain Python; ``resolve=False`` keeps interpolations as written (for what is
    recorded verbatim, such as the command line: ``${oc.env:...}`` there must stay a reference)."""
    try:
        value = OmegaConf.select(config, key, default=None)
    except Exception:  # an interpolation that cannot be resolved in the sweep process
        return None
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(value, resolve=resolve)
        except Exception:
            return None
    return value


def _short(target: Any) -> str | None:
    return None if target is None else str(target).rsplit(".", 1)[-1]


def sweep_info(config: DictConfig) -> dict[str, Any]:
    """What identifies the sweep: study and storage (any Optuna sweeper), sweep directory."""
    storage = _select(config, "hydra.sweeper.storage")
    return {"study": _select(config, "hydra.sweeper.study_name"),
            "storage": None if storage is None else str(storage),
            "dir": str(_select(config, "hydra.sweep.dir"))}


def sweep_params(config: DictConfig, info: dict[str, Any]) -> dict[str, Any]:
    """The parent's params: the study and how it searches, and the fixed settings every trial shares."""
    choices = _select(config, "hydra.runtime.choices") or {}
    sampler = _select(config, "hydra.sweeper.sampler") or {}
    pruner = _select(config, "hydra.sweeper.pruner") or {}
    params: dict[str, Any] = {
        "study": info["study"], "storage": None if info["storage"] is None else common.mask(info["storage"]),
        "direction": _select(config, "hydra.sweeper.direction"),
        "sweeper": choices.get("hydra/sweeper"), "launcher": choices.get("hydra/launcher"),
        "sampler": _short(sampler.get("_target_")) if isinstance(sampler, dict) else None,
        "sampler.seed": sampler.get("seed") if isinstance(sampler, dict) else None,
        "pruner": _short(pruner.get("_target_")) if isinstance(pruner, dict) else None,
        "search_space": choices.get("search_space"),
        "n_jobs": _select(config, "hydra.sweeper.n_jobs"),
        "max_retries": _select(config, "hydra.sweeper.max_retries"),
    }
    for key, spec in (_select(config, "hydra.sweeper.params") or {}).items():
        params[f"search_space.{key}"] = spec
    enqueue = _select(config, "hydra.sweeper.enqueue")
    if enqueue:  # the baseline first, then the earlier champions (an entry equal to one before is enqueued once)
        distinct = [e for i, e in enumerate(enqueue) if e not in enqueue[:i]]
        params["baseline"] = json.dumps(distinct[0], sort_keys=True)
        if len(distinct) > 1:
            params["enqueued"] = json.dumps(distinct[1:], sort_keys=True)
    for key in SWEEP_FIXED_KEYS:
        params[key] = _select(config, key)
    return {k: v for k, v in params.items() if v is not None}


class MLflowSweepCallback(Callback):
    """One MLflow parent run per sweep (see the module docstring)."""

    def __init__(self) -> None:
        self.settings: common.Settings | None = None
        self.guard: Guard | None = None
        self.client: Any = None
        self.run_id: str | None = None
        self.exp_id: str | None = None
        self._prior_ms = 0  # the parent's active time in earlier starts (its duration must not count the gaps)
        self._started_ms = 0
        self._earlier_dir: str | None = None  # the sweep directory an earlier start recorded

    # ------------------------------------------------------------------------------------ start
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self._on_start(config)
        except Exception as err:  # a bug here must cost one warning, not the sweep (or a warning per trial)
            log.warning("MLflow tracking could not start (%s): the sweep and its trials are not tracked; "
                        "the sweep goes on", common.first_line(err))
            self.run_id = None
            os.environ[ENV_PARENT] = UNAVAILABLE
            for var in (ENV_EXPERIMENT, ENV_PARENT_URL):
                os.environ.pop(var, None)

    def _on_start(self, config: DictConfig) -> None:
        from experiment.config import ConfigError

        for var in (ENV_PARENT, ENV_EXPERIMENT, ENV_PARENT_URL):  # nothing of an earlier sweep of this process
            os.environ.pop(var, None)
        self.run_id = None
        if common.compiles_only(config):  # no job runs, no trial is created: nothing to track
            log.debug("MLflow: the launcher only compiles (hydra.launcher.compile_only=true): nothing is tracked")
            return
        try:
            s = common.Settings.from_cfg(config)
        except ConfigError as err:
            log.warning("%s (MLflow tracking is off for this sweep)", err)
            return
        if s is None:
            return
        self.settings = s
        self.guard = g = Guard(s, "the sweep and its trials are not tracked; the sweep goes on")
        common.prepare(s)
        common.git_state()  # once here, inherited by forked jobs
        g("connecting", common.probe, s, fatal=True)
        self.client = g("opening the tracking store", common.client, s, fatal=True)
        found = None
        if self.client is not None:
            found = g("finding or creating the sweep's parent run", self._parent_run, config, s, fatal=True)
        if found is not None and not g.off:
            g("logging the sweep's settings", self._log_start, config, s, *found)
        if self.run_id is None or g.off:
            self.run_id = None
            os.environ[ENV_PARENT] = UNAVAILABLE  # the jobs stay quiet: this was the one warning
            return
        os.environ[ENV_PARENT] = self.run_id
        os.environ[ENV_EXPERIMENT] = str(self.exp_id)
        if s.kind == "server":  # a local store has no page to link (its `mlflow ui` hint is no URL)
            os.environ[ENV_PARENT_URL] = common.mask(s.ui_url(str(self.exp_id), self.run_id))

    def _parent_run(self, config: DictConfig, s: common.Settings) -> tuple[Any, bool]:
        """The experiment of the study and the sweep's parent run: found (a resumed sweep) or created."""
        info = sweep_info(config)
        study = info["study"]
        c = self.client
        name = common.default_experiment(config, study, s)
        exp_tags = {"navitune.study": study} if study else {}
        swept = [str(k) for k in (_select(config, "hydra.sweeper.params") or {})]
        self.exp_id = exp_id = common.experiment_id(c, name, s, exp_tags, swept or common.DEFAULT_VIEW_PARAMS)
        keys = common.sweep_keys(study, info["storage"], info["dir"])
        key = keys[common.SWEEP_KEY_TAG]
        found = common.find_parents(c, exp_id, common.SWEEP_KEY_TAG, key)
        self._started_ms, self._prior_ms, self._earlier_dir = _now_ms(), 0, None
        if found:
            run = found[0]
            if run.info.end_time and run.info.start_time:
                self._prior_ms = max(int(run.info.end_time) - int(run.info.start_time), 0)
            self._earlier_dir = run.data.tags.get("navitune.sweep_dir")
            c.update_run(run.info.run_id, status="RUNNING")
        else:
            leaf = Path(info["dir"]).name
            run = c.create_run(exp_id, run_name=f"sweep-{study}" if study else f"sweep-{leaf}",
                               tags={ROLE_TAG: "sweep", **keys})
            winner = common.find_parents(c, exp_id, common.SWEEP_KEY_TAG, key)[0]
            if winner.info.run_id != run.info.run_id:  # another sweeper of this study created one first
                c.delete_run(run.info.run_id)
                run = winner
        self.run_id = run.info.run_id
        return run, bool(found)

    def _log_start(self, config: DictConfig, s: common.Settings, run: Any, resumed: bool) -> None:
        """What this start of the sweep runs: settings, search space, git state, command line, config."""
        c, run_id, exp_id = self.client, run.info.run_id, str(self.exp_id)
        info = sweep_info(config)
        study = info["study"]
        keys = common.sweep_keys(study, info["storage"], info["dir"])
        invocation = int(run.data.tags.get("navitune.invocations", "0")) + 1
        params = {k: v for k, v in sweep_params(config, info).items() if k not in run.data.params}
        command_line = [*(_select(config, "hydra.overrides.hydra", resolve=False) or []),
                        *(_select(config, "hydra.overrides.task", resolve=False) or [])]
        overrides = [str(o) for o in command_line if not str(o).startswith("hydra.mode=")]  # -m is implied
        tags = {
            **common.source_tags(), **keys, ROLE_TAG: "sweep", "navitune.sweep_dir": info["dir"],
            "navitune.invocations": invocation, "navitune.n_trials": _select(config, "hydra.sweeper.n_trials"),
            "navitune.overrides": " ".join(overrides),
            "mlflow.note.content": self._note(info, study),
        }
        if study:
            tags |= {"navitune.study": study, "navitune.storage": common.mask(info["storage"] or "")}
        common.log_batch(c, run_id, params=params, tags=tags)
        text = common.config_yaml(config)
        c.log_text(run_id, text, "config.yaml")
        c.log_text(run_id, text, f"invocations/{invocation:03d}/config.yaml")
        c.log_text(run_id, common.mask("\n".join(overrides) + "\n"), f"invocations/{invocation:03d}/overrides.txt")
        log.info("MLflow: %s parent run %s of experiment %r: %s", "resumed" if resumed else "new",
                 run_id, common.default_experiment(config, study, s), s.ui_url(exp_id))

    @staticmethod
    def _note(info: dict[str, Any], study: str | None) -> str:
        what = f"Optuna study `{study}`" if study else "a Hydra multirun"
        return (f"navitune sweep of {what}: one child run per trial attempt (tags `navitune.trial`, "
                f"`navitune.state`, `navitune.attempt`); `{OBJECTIVE_METRIC}` is the best trial's. "
                f"Latest sweep directory: `{info['dir']}`.")

    # -------------------------------------------------------------------------------------- end
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        error = sys.exc_info()[1]  # Hydra calls this hook in a finally: an exception in flight = the sweep failed
        try:
            if self.run_id is not None and self.guard is not None:
                status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
                self.guard("logging the sweep's results", self._results, config)
                # its duration is the time its starts were active, not the days between a sweep and its rerun
                end = self._started_ms and _run_start_ms(self.client, self.run_id)
                end_ms = end + self._prior_ms + (_now_ms() - self._started_ms) if end else None
                self.guard("ending the sweep's parent run", self.client.set_terminated, self.run_id, status,
                           end_time=end_ms)
        except Exception as err:  # never let tracking turn a finished sweep into a failed one
            log.warning("MLflow: the sweep's results were not logged (%s)", common.first_line(err))
        finally:
            # ENV_PARENT_URL stays: a callback listed before this one (its end hook runs after this one) may
            # still link the run; the next sweep's start replaces it
            for var in (ENV_PARENT, ENV_EXPERIMENT):
                os.environ.pop(var, None)
            self.run_id = None

    def _results(self, config: DictConfig) -> None:
        c, run_id = self.client, self.run_id
        sweep_dir = Path(sweep_info(config)["dir"])
        metrics: list[tuple[str, float, int]] = []
        tags: dict[str, Any] = {}
        study = _study_summary(config)
        step = int(study.get("finished", 0)) if study else 0
        for key in ("finished", "complete", "pruned", "failed"):
            if study and key in study:
                metrics.append((f"trials_{key}", study[key], step))
        results_file = sweep_dir / "optimization_results.yaml"
        if results_file.is_file():
            results = OmegaConf.to_container(OmegaConf.load(results_file))
            if isinstance(results, dict) and "best_value" in results:
                metrics.append((OBJECTIVE_METRIC, float(results["best_value"]), step))  # the headline
                best = results.get("best_params") or {}
                metrics += [(f"best.{k}", float(v), step) for k, v in best.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)]
                tags["navitune.best_params"] = json.dumps(best, sort_keys=True)
        if study:
            for key in ("baseline_value", "improvement_pct"):
                if study.get(key) is not None:
                    metrics.append((key, study[key], step))
            if study.get("best_trial") is not None:
                tags["navitune.best_trial"] = study["best_trial"]
        tags |= _candidate_tags(sweep_dir)
        if not _holds_trials(sweep_dir) and self._earlier_dir and self._earlier_dir != str(sweep_dir):
            # a rerun that ran nothing (its empty directory is removed): point back to the trials' directory
            info = {**sweep_info(config), "dir": self._earlier_dir}
            tags |= {"navitune.sweep_dir": self._earlier_dir, "mlflow.note.content": self._note(info, info["study"])}
        metrics.sort(key=lambda m: m[0] != OBJECTIVE_METRIC)  # MLflow lists metrics in the order first logged
        common.log_batch(c, run_id, tags=tags, metrics=metrics)
        for path, folder in result_files(sweep_dir):
            c.log_artifact(run_id, str(path), folder)
        assert self.guard is not None
        self.guard("making child runs whole from the study", self._backfill, config)
        if metrics:
            best = next((v for k, v, _ in metrics if k == OBJECTIVE_METRIC), None)
            log.info("MLflow: sweep results logged to parent run %s%s", run_id,
                     "" if best is None else f" (best value {best:,.1f})")

    def _backfill(self, config: DictConfig) -> None:
        """Child runs made whole from the study (:mod:`experiment.tracking.backfill`): trials without a run get
        one, runs their jobs left RUNNING are completed."""
        try:
            study = _load_study(config)
        except Exception as err:  # the study's storage, not MLflow: the parent's other results are logged
            log.warning("MLflow: trials without a child run were not added (the study could not be read: %s)",
                        common.first_line(err))
            return
        if study is not None:
            from experiment.tracking.backfill import backfill

            backfill(self.client, str(self.exp_id), str(self.run_id), study, config)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _run_start_ms(client: Any, run_id: str) -> int | None:
    start = client.get_run(run_id).info.start_time
    return int(start) if start else None


def _holds_trials(sweep_dir: Path) -> bool:
    """Whether the sweep directory holds trial directories (a rerun that ran nothing holds none, or is gone)."""
    try:
        return any(p.is_dir() and p.name.isdigit() for p in sweep_dir.iterdir())
    except OSError:
        return False


def result_files(sweep_dir: Path) -> list[tuple[Path, str | None]]:
    """The sweep directory's results and where they go in the parent run: the sweeper's
    ``optimization_results.yaml`` and ``best_*.yaml`` at the top, the champion/challenger report (written by
    its callback, whose end hook Hydra runs before this one) under ``report/``."""
    files: list[tuple[Path, str | None]] = [(p, None) for p in [sweep_dir / "optimization_results.yaml",
                                                                  *sorted(sweep_dir.glob("best_*.yaml"))]]
    try:
        from experiment.study import report_paths
    except ImportError:  # no report module: its usual files, if any
        report = [sweep_dir / "report.md", sweep_dir / "report.json", *sorted(sweep_dir.glob("*.png"))]
    else:
        report = report_paths(sweep_dir)
    files += [(p, "report") for p in report]
    return [(p, folder) for p, folder in files if p.is_file()]


def _load_study(config: DictConfig) -> Any:
    """The sweep's Optuna study, or None when the sweep has none (Hydra's basic sweeper)."""
    info = sweep_info(config)
    if not info["study"] or not info["storage"]:
        return None
    import optuna

    try:
        from hydra_plugins.navitune_shared.storage import make_storage

        storage: Any = make_storage(info["storage"])
    except ImportError:
        storage = info["storage"]
    try:
        return optuna.load_study(study_name=info["study"], storage=storage)
    except KeyError:  # Optuna's "Record does not exist": no trial was ever created (e.g. compile_only)
        return None


def _study_summary(config: DictConfig) -> dict[str, Any] | None:
    """Trial counts, the best trial and the production baseline's value, read back from the Optuna study
    (None when the sweep has no Optuna study or it cannot be read: the rest is still logged)."""
    try:
        from hydra_plugins.navitune_shared.study_summary import summarize

        study = _load_study(config)
        if study is None:
            return None
        s = summarize(study)
        out: dict[str, Any] = {"finished": s.finished, "complete": s.complete, "pruned": s.pruned, "failed": s.failed}
        if s.best is not None:
            out["best_trial"] = s.best.number
        if s.improvement_pct is not None:
            out["baseline_value"] = s.baseline.value
            out["improvement_pct"] = s.improvement_pct
        return out
    except Exception as err:  # not an Optuna study, or unreadable: the sweep's other results still go in
        log.debug("no study summary for MLflow: %s", common.first_line(err))
        return None


def _candidate_tags(sweep_dir: Path) -> dict[str, str]:
    """The report's candidate when its selection stage chose another trial than the study's best (the
    ``navitune.best_*`` tags stay the study's): ``navitune.candidate_trial`` and ``navitune.candidate_params``."""
    try:
        selection = json.loads((sweep_dir / "report.json").read_text()).get("selection")
    except (OSError, ValueError):
        return {}
    if not isinstance(selection, dict) or selection.get("chosen_trial") is None:
        return {}
    return {"navitune.candidate_trial": str(selection["chosen_trial"]),
            "navitune.candidate_params": json.dumps(selection.get("chosen_params") or {}, sort_keys=True)}

