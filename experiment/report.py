"""Champion/challenger report of a finished sweep: is the tuned policy better than production on the held-out
test window, for both demand forecasts? (the four patterns of the talk: {production, tuned} x {ml, stats}).

``python -m experiment.report <sweep dir> [overrides...]`` runs it on demand; :class:`ReportCallback` runs it at
the end of every navitune sweep (``hydra.callbacks.report`` in ``conf/config.yaml``). Both call
:func:`build_report`, which

* re-composes the sweep's own config (its command-line overrides, not its tuned values) with
  ``window=test_week`` (``report.window``) and ``demand=ml`` / ``demand=stats``;
* simulates the PRODUCTION parameters (the study's baseline trial, else the sweep's policy option, by default
  ``conf/policy/production.yaml``) and the BEST parameters (``optimization_results.yaml``) in ``report.replications``
  replications with common random numbers: replication ``r`` runs both with window seed ``window.seed + r``;
* runs the simulations in ``report.workers`` processes (plain :func:`experiment.sim.simulate.simulate` on the
  composed configs' :func:`experiment.app.sim_params`; no Hydra inside the workers);
* writes ``report.json``, ``report.md``, ``policy_candidate.yaml`` and PNG plots into the sweep directory.

Why a re-composition rather than the job's saved config: the test window is a different config-group option, and
composing it the way ``python -m experiment window=test_week`` does keeps the report reproducible by hand.
Imports are lazy: Hydra instantiates the callback for every run, and ``python -m experiment --help`` stays fast.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("navitune.report")

DEMANDS = ("ml", "stats")
SETS = ("production", "tuned")
BASELINE_ATTR = "navitune:baseline"
REVENUE_PLOT = "revenue_by_pattern.png"
CANDIDATE = "policy_candidate.yaml"
#: every file the report may write into the sweep directory (plots only when they could be drawn)
REPORT_FILES = ("report.json", "report.md", CANDIDATE, REVENUE_PLOT,
                "optimization_history.png", "param_importances.png", "parallel_coordinate.png")
CI_METHOD = ("mean of the per-replication paired % differences 100*(tuned_r/production_r - 1), "
             "two-sided Student-t interval with n-1 degrees of freedom")
PROMOTION_RULE = "promote only if the lower bound of the 95 % interval is above 0 for every demand source"
# the report chooses these itself: the sweep's own values of them are not reused
OWN_KEYS = ("window", "demand", "demand.source")


class ReportError(Exception):
    """Bad input (not a finished sweep, a bad setting): the CLI prints this one line and exits with 2."""


@dataclass
class ReportSettings:
    """``report.*`` on the command line, ``hydra.callbacks.report.*`` for the end-of-sweep report."""

    replications: int = 5  # paired replications per pattern (>= 2: an interval needs a spread)
    window: str = "test_week"  # the held-out window option (conf/window/)
    workers: int = 2  # simulation processes
    match_scale: bool = True  # the test window takes the tuning window's days, window.drivers and max_shift_h
    plots: bool = True

    def check(self) -> "ReportSettings":
        def bad(key: str, value: Any, allowed: str) -> ReportError:
            return ReportError(f"navitune.report: invalid report.{key}={value!r}; allowed: {allowed}")

        if isinstance(self.replications, bool) or not isinstance(self.replications, int) or self.replications < 2:
            raise bad("replications", self.replications, "a whole number >= 2")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise bad("workers", self.workers, "a whole number >= 1")
        windows = sorted(p.stem for p in (_conf_dir() / "window").glob("*.yaml") if not p.stem.startswith("_"))
        if self.window not in windows:
            raise bad("window", self.window, ", ".join(windows))
        for key in ("match_scale", "plots"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, getattr(self, key), "true or false")
        return self

    @classmethod
    def from_overrides(cls, items: Sequence[str]) -> "ReportSettings":
        """Settings from ``report.<key>=<value>`` strings (values parsed as YAML: 5, true, test_week)."""
        import yaml

        values: dict[str, Any] = {}
        known = set(asdict(cls()))
        for item in items:
            key, _, raw = item.partition("=")
            name = key.removeprefix("report.")
            if name not in known:
                raise ReportError(f"navitune.report: unknown setting {key}; allowed: "
                                  + ", ".join(f"report.{k}" for k in sorted(known)))
            try:
                values[name] = yaml.safe_load(raw)
            except yaml.YAMLError:
                values[name] = raw
        return cls(**values).check()


@dataclass
class Sweep:
    """What the report needs from a finished sweep."""

    dir: Path
    config: DictConfig  # the sweep's config with its hydra node (from Hydra, or a job's .hydra/ files)
    best_params: dict[str, Any]
    best_value: float | None
    overrides: list[str]  # the sweep's command-line overrides the report composes with
    study_name: str | None
    storage: str | None  # resolved, relative file paths made absolute; None: in memory or unresolvable
    storage_problem: str | None = None


# ---------------------------------------------------------------------------------------------- public API
def report_paths(sweep_dir: str | Path) -> list[Path]:
    """The report files present in ``sweep_dir`` (report.json, report.md, the candidate, the PNGs), e.g. for
    attaching them to the sweep's MLflow parent run. Cheap: no simulation, no heavy import."""
    d = Path(sweep_dir)
    return [d / name for name in REPORT_FILES if (d / name).is_file()]


def build_report(
    sweep_dir: str | Path,
    overrides: Sequence[str] = (),
    settings: ReportSettings | None = None,
    config: DictConfig | None = None,
) -> dict[str, Any]:
    """Evaluate, decide, write the files; returns the ``report.json`` content (plus ``files``: the paths
    written). ``config`` is the sweep's config when called from the sweep itself; without it the sweep is read
    from its directory. Raises :class:`ReportError` for input that is not a finished sweep."""
    t0 = time.perf_counter()
    settings = (settings or ReportSettings()).check()
    sweep = load_sweep(sweep_dir, config)
    study, study_problem = _load_study(sweep)
    baseline, baseline_source = _baseline(study, sweep)
    tuning_window = _select(sweep.config, "window.name")
    if tuning_window == settings.window:
        log.warning("champion/challenger report: report.window=%s is the sweep's tuning window, not a held-out "
                    "one", settings.window)
    cfgs = compose_patterns(sweep, settings, baseline, overrides)
    jobs = [(s, d, r, p) for (s, d), runs in cfgs.items() for r, p in enumerate(runs["sim"])]
    n_workers = min(settings.workers, len(jobs))
    log.info("champion/challenger report: %d simulations (%s x %s x %d replications) on %s, %d process(es)",
             len(jobs), "/".join(SETS), "/".join(DEMANDS), settings.replications, settings.window, n_workers)
    metrics = run_simulations([p for *_, p in jobs], n_workers)
    result = assemble(sweep, settings, cfgs, jobs, metrics, baseline_source)
    result["study_problem"] = study_problem
    files = write_report(sweep, settings, result, cfgs, study)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    (sweep.dir / "report.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    result["files"] = [str(f) for f in files]
    imp = result["improvement_pct"]
    log.info("champion/challenger report: tuned vs production on %s: ml %+.2f %% [%+.2f, %+.2f], "
             "stats %+.2f %% [%+.2f, %+.2f] -> %s (%s)", settings.window,
             imp["ml"], *result["ci95_pct"]["ml"], imp["stats"], *result["ci95_pct"]["stats"],
             result["decision"], sweep.dir / "report.md")
    return result


# ------------------------------------------------------------------------------------------- the sweep
def load_sweep(sweep_dir: str | Path, config: DictConfig | None = None) -> Sweep:
    """The finished sweep in ``sweep_dir``: its best parameters and the config it ran with."""
    d = Path(sweep_dir)
    if not d.is_dir():
        raise ReportError(f"navitune.report: {d} is not a directory (expected a sweep directory such as "
                          "outputs/sweeps/<date>/<time>)")
    results_file = d / "optimization_results.yaml"
    if not results_file.is_file():
        raise ReportError(f"navitune.report: {d} holds no optimization_results.yaml (not an Optuna sweep "
                          "directory, or the sweep has not finished)")
    try:
        results = OmegaConf.to_container(OmegaConf.load(results_file))
    except Exception as err:
        raise ReportError(f"navitune.report: cannot read {results_file}: {_first_line(err)}") from None
    if not isinstance(results, dict) or not isinstance(results.get("best_params"), dict):
        raise ReportError(f"navitune.report: {results_file} has no best_params (a multi-objective study has no "
                          "single champion to compare)")
    if config is None:
        config = _saved_config(d)
    best = dict(results["best_params"])
    searched = set(best) | set((_select(config, "hydra.sweeper.params") or {}).keys())
    storage, problem = _resolved_storage(config)
    value = results.get("best_value")
    return Sweep(
        dir=d, config=config, best_params=best, best_value=None if value is None else float(value),
        overrides=_reusable_overrides([str(o) for o in (_select(config, "hydra.overrides.task", resolve=False) or [])],
                                      searched),
        study_name=_select(config, "hydra.sweeper.study_name"), storage=storage, storage_problem=problem,
    )


def _saved_config(d: Path) -> DictConfig:
    """The sweep's config from ``multirun.yaml`` (Hydra's basic launcher) or a job's ``.hydra/`` files."""
    if (d / "multirun.yaml").is_file():
        return OmegaConf.load(d / "multirun.yaml")  # type: ignore[return-value]
    jobs = sorted((p for p in d.iterdir() if p.name.isdigit() and (p / ".hydra" / "hydra.yaml").is_file()),
                  key=lambda p: int(p.name))
    if not jobs:
        raise ReportError(f"navitune.report: {d} holds no sweep config (neither multirun.yaml nor a job's "
                          ".hydra/hydra.yaml)")
    try:
        task = OmegaConf.load(jobs[0] / ".hydra" / "config.yaml")
        hydra = OmegaConf.load(jobs[0] / ".hydra" / "hydra.yaml")
    except Exception as err:
        raise ReportError(f"navitune.report: cannot read {jobs[0] / '.hydra'}: {_first_line(err)}") from None
    return OmegaConf.merge(task, hydra)  # type: ignore[return-value]


def _reusable_overrides(overrides: Sequence[str], searched: set[str]) -> list[str]:
    """The sweep's task overrides without sweep syntax, the tuned keys (a job's overrides hold its trial's
    values) and what the report sets itself (window, demand)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    keep = []
    for text in overrides:
        try:
            o = parser.parse_overrides([text])[0]
        except Exception:
            continue
        key = o.key_or_group
        if o.is_sweep_override() or key in searched or key in OWN_KEYS or key.startswith("window."):
            continue
        keep.append(text)
    return keep


def _resolved_storage(config: DictConfig) -> tuple[str | None, str | None]:
    """The study storage with its interpolations resolved (``${paths.outputs}``, ``${oc.env:...}`` from the
    environment) and a relative file path made absolute against the sweep's working directory."""
    try:
        value = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    except Exception as err:  # e.g. an environment variable the storage URL needs is not set here
        return None, f"hydra.sweeper.storage cannot be resolved: {_first_line(err)}"
    if value is None or str(value) in ("", "None", "null"):
        return None, "the study was kept in memory (hydra.sweeper.storage=null)"
    text, cwd = str(value), _select(config, "hydra.runtime.cwd")
    for prefix in ("journal://", "sqlite:///"):
        if text.startswith(prefix) and cwd:
            path = text[len(prefix):]
            if path and not Path(path).is_absolute():
                return prefix + str(Path(cwd) / path), None
    return text, None


def _load_study(sweep: Sweep) -> tuple[Any, str | None]:
    """The sweep's Optuna study (for the baseline trial and the plots), or None and why not."""
    if sweep.storage is None or not sweep.study_name:
        return None, sweep.storage_problem or "the sweep has no study name"
    if sweep.storage.startswith("journal://") and not Path(sweep.storage[len("journal://"):]).is_file():
        return None, f"no study journal at {sweep.storage[len('journal://'):]}"
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            from hydra_plugins.navitune_optuna.storage import make_storage

            storage: Any = make_storage(sweep.storage)
        except ImportError:
            storage = sweep.storage
        return optuna.load_study(study_name=str(sweep.study_name), storage=storage), None
    except Exception as err:
        return None, f"study {sweep.study_name!r} not loaded: {type(err).__name__}: {_first_line(err)}"


def _baseline(study: Any, sweep: Sweep) -> tuple[dict[str, Any] | None, str]:
    """The production parameters the sweep compared against: its baseline trial (user attribute
    ``navitune:baseline`` == 0, enqueued from the production policy), else the sweep's policy option."""
    if study is not None:
        from optuna.trial import TrialState

        trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(BASELINE_ATTR) == 0]
        trials.sort(key=lambda t: (t.state != TrialState.COMPLETE, t.number))
        if trials:
            return dict(trials[0].params), f"study baseline trial {trials[0].number}"
    choice = _select(sweep.config, "hydra.runtime.choices.policy") or "production"
    return None, f"conf/policy/{choice}.yaml"


# ----------------------------------------------------------------------------------------- composition
def _conf_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "conf"


def _compose(overrides: list[str]) -> DictConfig:
    """Compose the navitune config as ``python -m experiment <overrides>`` would (inside a running Hydra app,
    e.g. the end-of-sweep callback, with the app's own Hydra)."""
    import warnings

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiment.config import register_configs

    register_configs()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if GlobalHydra.instance().is_initialized():
                return compose(config_name="config", overrides=overrides)
            with initialize_config_dir(config_dir=str(_conf_dir())):
                return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ReportError(f"navitune.report: cannot compose the test config with {overrides}: "
                          f"{_first_line(err.__cause__ or err)}") from None


def _last_wins(overrides: Sequence[str]) -> list[str]:
    """Overrides with a repeated key reduced to the last one (the report's own after the sweep's, the
    command line's after both)."""
    def key(text: str) -> str:
        return text.split("=", 1)[0].lstrip("+~")

    out: dict[str, str] = {}
    for text in overrides:
        out.pop(key(text), None)
        out[key(text)] = text
    return list(out.values())


def compose_patterns(
    sweep: Sweep, settings: ReportSettings, baseline: dict[str, Any] | None, extra: Sequence[str] = ()
) -> dict[tuple[str, str], dict[str, Any]]:
    """For each (parameter set, demand source): the composed config and one SimParams per replication
    (seed ``window.seed + r`` for both sets: common random numbers)."""
    from experiment.app import sim_params
    from experiment.config import ConfigError, validate

    extra = list(extra)
    user_keys = {o.split("=", 1)[0].lstrip("+~") for o in extra}
    tuning = _select(sweep.config, "window") or {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for demand in DEMANDS:
        base = _compose(_last_wins([*sweep.overrides, f"window={settings.window}", f"demand={demand}", *extra]))
        if settings.match_scale:
            _match_scale(base, tuning, user_keys)
        for name in SETS:
            cfg = copy.deepcopy(base)
            params = sweep.best_params if name == "tuned" else (baseline or {})
            for key, value in params.items():
                try:
                    OmegaConf.update(cfg, key, value, merge=False)
                except Exception as err:
                    raise ReportError(f"navitune.report: cannot set {key}={value!r} on the test config: "
                                      f"{_first_line(err)}") from None
            if name == "tuned":
                cfg.policy.name = candidate_name(sweep)
            runs = []
            for r in range(settings.replications):
                rep = copy.deepcopy(cfg)
                rep.window.seed = int(base.window.seed) + r
                try:
                    validate(rep)
                except ConfigError as err:
                    raise ReportError(str(err)) from None
                runs.append(sim_params(rep))
            out[(name, demand)] = {"cfg": cfg, "sim": runs}
    return out


def _match_scale(cfg: DictConfig, tuning: Any, user_keys: set[str]) -> None:
    """Give the test window the tuning window's length and fleet caps (unless set on the command line): a
    smoke sweep gets a smoke-sized report; the default sweep's 7-day tuning week gives the full test week."""
    from experiment.config import parse_day

    try:
        days = (parse_day("window.end", tuning["end"]) - parse_day("window.start", tuning["start"])).days
    except Exception:
        return
    w = cfg.window
    if "window.end" not in user_keys:
        w.end = (parse_day("window.start", w.start) + dt.timedelta(days=days)).isoformat()
    for key in ("drivers", "max_shift_h"):
        if f"window.{key}" not in user_keys:
            w[key] = tuning.get(key)


# ------------------------------------------------------------------------------------------ simulation
def _simulate(params: Any) -> dict[str, float]:
    """One simulation in a worker process: only the summary metrics travel back (not the per-driver arrays)."""
    from experiment.sim.simulate import simulate

    result = simulate(params)
    return {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}


def run_simulations(params: Sequence[Any], workers: int) -> list[dict[str, float]]:
    """Simulate every SimParams, ``workers`` at a time in fresh (spawned) processes: a sweep process may hold
    threads and open stores, which a forked child would inherit half-way."""
    if workers <= 1 or len(params) <= 1:
        return [_simulate(p) for p in params]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list[dict[str, float] | None] = [None] * len(params)
    done, t0 = 0, time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_simulate, p): i for i, p in enumerate(params)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                done += 1
                if done % max(1, len(params) // 5) == 0 or done == len(params):
                    log.info("champion/challenger report: %d/%d simulations done (%.0f s)", done, len(params),
                             time.perf_counter() - t0)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return [r for r in results if r is not None]


# ------------------------------------------------------------------------------------------ the verdict
def assemble(
    sweep: Sweep, settings: ReportSettings, cfgs: dict[tuple[str, str], dict[str, Any]],
    jobs: list[tuple[str, str, int, Any]], metrics: list[dict[str, float]], baseline_source: str,
) -> dict[str, Any]:
    """The report.json content: four patterns, paired improvements with 95 % intervals, the decision."""
    from experiment.app import tuned_params
    from experiment.report_stats import mean_interval, paired_improvement, promote

    values: dict[tuple[str, str], list[dict[str, float]]] = {}
    for (s, d, _r, _p), m in zip(jobs, metrics):
        values.setdefault((s, d), []).append(m)
    patterns = []
    for s in SETS:
        for d in DEMANDS:
            ms = values[(s, d)]
            revenue = [m["revenue_per_driver_day_yen"] for m in ms]
            iv = mean_interval(revenue)
            cfg = cfgs[(s, d)]["cfg"]
            patterns.append({
                "set": s, "policy": str(cfg.policy.name), "demand": d,
                "revenue_per_driver_day_yen": iv.mean, "ci95_yen": [iv.lo, iv.hi], "sd_yen": iv.sd,
                "replications": len(revenue), "seeds": [int(p.seed) for p in cfgs[(s, d)]["sim"]],
                "per_replication_yen": revenue,
                "revenue_per_driver_shift_yen": _mean(m["revenue_per_driver_shift_yen"] for m in ms),
                "occupancy_distance": _mean(m["occupancy_distance"] for m in ms),
                "trips_per_driver_shift": _mean(m["trips_per_driver_shift"] for m in ms),
                "params": tuned_params(cfg),
            })
    intervals = {}
    for d in DEMANDS:
        prod = [m["revenue_per_driver_day_yen"] for m in values[("production", d)]]
        tuned = [m["revenue_per_driver_day_yen"] for m in values[("tuned", d)]]
        intervals[d] = paired_improvement(prod, tuned)
    decision = promote(intervals)
    failing = [d for d, iv in intervals.items() if not iv.lo > 0]
    reason = ("the lower bound of the 95 % interval is above 0 for " + " and ".join(DEMANDS) + " demand"
              if decision else "the lower bound of the 95 % interval is not above 0 for "
              + " and ".join(failing) + " demand")
    test_cfg = cfgs[("production", DEMANDS[0])]["cfg"]
    tuning = _select(sweep.config, "window") or {}
    return {
        "study": sweep.study_name,
        "storage": _mask(sweep.storage),
        "sweep_dir": str(sweep.dir),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "region": str(test_cfg.region.name),
        "windows": {
            "tuning": {k: tuning.get(k) for k in ("name", "start", "end", "seed", "drivers", "max_shift_h")},
            "test": {**{k: test_cfg.window.get(k) for k in ("name", "start", "end", "drivers", "max_shift_h")},
                     "seeds": [int(test_cfg.window.seed) + r for r in range(settings.replications)],
                     "matched_to_tuning_scale": settings.match_scale,
                     "held_out": settings.window != tuning.get("name")},
        },
        "replications": settings.replications,
        "common_random_numbers": True,
        "best_params": sweep.best_params,
        "best_value_tuning": sweep.best_value,
        "baseline": {"source": baseline_source, "params": tuned_params(cfgs[("production", DEMANDS[0])]["cfg"])},
        "patterns": patterns,
        "improvement_pct": {d: iv.mean for d, iv in intervals.items()},
        "ci95_pct": {d: [iv.lo, iv.hi] for d, iv in intervals.items()},
        "paired_diff_pct": {d: _paired(values, d) for d in DEMANDS},
        "ci_method": CI_METHOD,
        "promotion_rule": PROMOTION_RULE,
        "promote": decision,
        "decision": "promote" if decision else "keep production",
        "decision_reason": reason,
        "candidate": {"file": CANDIDATE, "name": candidate_name(sweep)},
        "settings": asdict(settings),
    }


def _paired(values: dict[tuple[str, str], list[dict[str, float]]], d: str) -> list[float]:
    from experiment.report_stats import paired_pct_differences

    return paired_pct_differences([m["revenue_per_driver_day_yen"] for m in values[("production", d)]],
                                  [m["revenue_per_driver_day_yen"] for m in values[("tuned", d)]])


def candidate_name(sweep: Sweep) -> str:
    return f"tuned_{sweep.study_name or sweep.dir.name}"


# ---------------------------------------------------------------------------------------------- files
def write_report(
    sweep: Sweep, settings: ReportSettings, result: dict[str, Any],
    cfgs: dict[tuple[str, str], dict[str, Any]], study: Any,
) -> list[Path]:
    """report.md, the policy candidate and the plots (report.json is written last by the caller)."""
    d = sweep.dir
    for old in report_paths(d):  # a plot skipped this time must not survive from an earlier report
        old.unlink()
    files = [d / "report.json"]
    files.append(_write_candidate(sweep, result, cfgs[("tuned", DEMANDS[0])]["cfg"]))
    if settings.plots:
        from experiment.report_plots import revenue_plot, study_plots

        improvements = {k: {"improvement_pct": result["improvement_pct"][k], "ci95_pct": result["ci95_pct"][k]}
                        for k in DEMANDS}
        files.append(revenue_plot(result["patterns"], improvements, d / REVENUE_PLOT))
        if study is not None:
            written, skipped = study_plots(study, d)
            files += written
            for why in skipped:
                log.info("champion/challenger report: plot skipped: %s", why)
    result["plots"] = [f.name for f in files if f.suffix == ".png"]
    (d / "report.md").write_text(_markdown(result, sweep))
    files.insert(1, d / "report.md")
    return files


def _write_candidate(sweep: Sweep, result: dict[str, Any], cfg: DictConfig) -> Path:
    """The tuned policy as a complete ``conf/policy`` option (every key, not a diff against production, so it
    stays what was tested when production.yaml changes)."""
    name = candidate_name(sweep)
    policy = OmegaConf.to_container(cfg.policy, resolve=True)
    assert isinstance(policy, dict)
    body = OmegaConf.to_yaml(OmegaConf.create({"defaults": ["policy_schema", "_self_"], **policy, "name": name}))
    imp, ci = result["improvement_pct"], result["ci95_pct"]
    lines = [
        f"# Candidate navigation parameters tuned by study {sweep.study_name} (sweep {sweep.dir}).",
        f"# Test window {result['windows']['test']['name']}, {result['replications']} paired replications, "
        "vs production:",
        *(f"#   {d} demand: {imp[d]:+.2f} % (95 % CI {ci[d][0]:+.2f} .. {ci[d][1]:+.2f})" for d in DEMANDS),
        f"# Decision: {result['decision']} ({result['decision_reason']}).",
        f"# Use: cp {sweep.dir / CANDIDATE} conf/policy/{name}.yaml && python -m experiment policy={name}",
    ]
    path = sweep.dir / CANDIDATE
    path.write_text("\n".join(lines) + "\n" + body)
    return path


def _markdown(r: dict[str, Any], sweep: Sweep) -> str:
    """A human summary: the four patterns, the paired improvements and the decision."""
    test, tuning = r["windows"]["test"], r["windows"]["tuning"]
    pats = {(p["set"], p["demand"]): p for p in r["patterns"]}
    out = [
        f"# Champion/challenger report: {r['study']}",
        "",
        f"**Decision: {'PROMOTE the tuned parameters' if r['promote'] else 'keep production'}** "
        f"({r['decision_reason']}).",
        "",
        f"Region `{r['region']}`; tuned on `{tuning.get('name')}` ({tuning.get('start')} .. {tuning.get('end')}, "
        f"seed {tuning.get('seed')}); evaluated on the held-out `{test['name']}` ({test['start']} .. {test['end']}), "
        f"{r['replications']} replications with common random numbers (seeds {test['seeds'][0]}.."
        f"{test['seeds'][-1]}, the same for both parameter sets).",
        "",
        "| parameters | demand | revenue / driver-day (yen) | 95 % CI (yen) | trips / shift | occupancy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in SETS:
        for d in DEMANDS:
            p = pats[(s, d)]
            lo, hi = p["ci95_yen"]
            out.append(f"| {s} (`{p['policy']}`) | {d} | {p['revenue_per_driver_day_yen']:,.0f} | "
                       f"{lo:,.0f} .. {hi:,.0f} | {p['trips_per_driver_shift']:.2f} | "
                       f"{100 * p['occupancy_distance']:.1f} % |")
    out += ["", "| demand | tuned vs production | 95 % CI | per replication |", "|---|---:|---:|---|"]
    for d in DEMANDS:
        lo, hi = r["ci95_pct"][d]
        reps = ", ".join(f"{x:+.2f}" for x in r["paired_diff_pct"][d])
        out.append(f"| {d} | {r['improvement_pct'][d]:+.2f} % | {lo:+.2f} .. {hi:+.2f} % | {reps} |")
    params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in r["best_params"].items())
    base = r["baseline"]
    out += [
        "",
        f"Interval: {r['ci_method']}. Rule: {r['promotion_rule']}.",
        "",
        f"Tuned parameters (best trial, {_fmt(r['best_value_tuning'])} yen/driver-day on the tuning window): {params}.",
        f"Production parameters: {base['source']} ("
        + ", ".join(f"`{k}` = {_fmt(base['params'].get(k.removeprefix('policy.')))}" for k in r["best_params"])
        + ").",
        "",
        f"Candidate policy file: `{CANDIDATE}` — `cp {sweep.dir / CANDIDATE} conf/policy/{r['candidate']['name']}.yaml`"
        f" then `python -m experiment policy={r['candidate']['name']}`.",
    ]
    if r.get("study_problem"):
        out += ["", f"Study plots not drawn: {r['study_problem']}."]
    for png in r.get("plots", []):
        out += ["", f"![{png}]({png})"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------- end-of-sweep hook
class ReportCallback(Callback):
    """Runs :func:`build_report` when a sweep has finished (``on_multirun_end`` without an exception in flight
    and with an ``optimization_results.yaml``). A report that fails costs one warning, never the sweep.
    Registered after the MLflow callback so it runs first at the end (Hydra calls end hooks in reverse) and
    MLflow attaches its files to the parent run."""

    def __init__(self, enabled: bool = True, replications: int = 5, window: str = "test_week", workers: int = 2,
                 match_scale: bool = True, plots: bool = True) -> None:
        from experiment.config import ConfigError

        self.enabled = enabled
        try:
            self.settings = ReportSettings(replications, window, workers, match_scale, plots).check()
        except ReportError as err:
            raise ConfigError(str(err).replace("report.", "hydra.callbacks.report.", 1)) from None
        if not isinstance(enabled, bool):
            raise ConfigError(f"navitune: invalid config hydra.callbacks.report.enabled={enabled!r}; "
                              "allowed: true or false")
        self._started: dt.datetime | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = dt.datetime.now()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled or sys.exc_info()[1] is not None:  # an exception in flight: the sweep failed
            return
        try:
            sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        except Exception:
            return
        if not (sweep_dir / "optimization_results.yaml").is_file():
            log.debug("no optimization_results.yaml in %s: no champion/challenger report", sweep_dir)
            return
        try:
            if self._started is not None and not _finished_since(load_sweep(sweep_dir, config), self._started):
                log.info("champion/challenger report: no trial finished in this sweep (the study was already "
                         "complete); python -m experiment.report %s writes one on demand", sweep_dir)
                return
            build_report(sweep_dir, settings=self.settings, config=config)
        except Exception as err:
            log.warning("champion/challenger report not written (the sweep itself is complete): %s: %s",
                        type(err).__name__, _first_line(err))


def _finished_since(sweep: Sweep, started: dt.datetime) -> bool:
    """Did a trial of the sweep's study finish after ``started``? (A re-run of a complete study launches
    nothing, and its report would repeat the last one.) True when the study cannot be read."""
    study, _ = _load_study(sweep)
    if study is None:
        return True
    from optuna.trial import TrialState

    return any(t.datetime_complete is not None and t.datetime_complete >= started
               for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED))


# ------------------------------------------------------------------------------------------- helpers
def _select(config: Any, key: str, resolve: bool = True) -> Any:
    """The value at ``key`` as plain Python; ``resolve=False`` keeps ``${...}`` as written (overrides)."""
    try:
        value = OmegaConf.select(config, key, default=None)
    except Exception:
        return None
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        try:
            return OmegaConf.to_container(value, resolve=resolve)
        except Exception:
            return OmegaConf.to_container(value, resolve=False)
    return value


def _mean(xs: Any) -> float:
    values = list(xs)
    return sum(values) / len(values)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _mask(storage: str | None) -> str | None:
    """A storage URL without its secrets (report files are shared)."""
    from hydra_plugins.navitune_shared.redact import redact

    return None if storage is None else redact(storage)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


USAGE = """usage: python -m experiment.report <sweep dir> [report.KEY=VALUE ...] [config overrides ...]

Evaluate the sweep's best parameters against production on the held-out test window for ml and stats demand,
with paired replications (common random numbers), and write report.json, report.md, policy_candidate.yaml and
plots into the sweep directory.

report settings: report.replications=5  report.window=test_week  report.workers=2
                 report.match_scale=true (test window as long as the tuning window, same fleet caps)
                 report.plots=true
window=NAME is report.window=NAME; demand is not an override (the report evaluates ml and stats)
config overrides (applied to the test configs), e.g. window.drivers=200 region.requests_per_hour=1000"""


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; bad input is one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][report] %(message)s", datefmt="%H:%M:%S")
    sweep_dir, rest = args[0], args[1:]
    # window=X is the test window's option (report.window); the report itself sets the demand source
    rest = [f"report.window={a.split('=', 1)[1]}" if a.startswith("window=") else a for a in rest]
    try:
        own = [a for a in rest if a.split("=", 1)[0].lstrip("+~") in ("demand", "demand.source")]
        if own:
            raise ReportError(f"navitune.report: {own[0]} is not allowed: the report evaluates both demand sources "
                              "(ml and stats)")
        settings = ReportSettings.from_overrides([a for a in rest if a.startswith("report.")])
        r = build_report(sweep_dir, [a for a in rest if not a.startswith("report.")], settings)
    except ReportError as err:
        print(str(err), file=sys.stderr)
        return 2
    except TypeError as err:  # e.g. report.unknown handled above; a wrong value type lands here
        print(f"navitune.report: {err}", file=sys.stderr)
        return 2
    d = Path(sweep_dir)
    print(f"\n{'parameters':<12}{'demand':<8}{'yen/driver-day':>16}{'95 % CI':>22}")
    for p in r["patterns"]:
        lo, hi = p["ci95_yen"]
        print(f"{p['set']:<12}{p['demand']:<8}{p['revenue_per_driver_day_yen']:>16,.0f}{f'{lo:,.0f} .. {hi:,.0f}':>22}")
    for dem in DEMANDS:
        lo, hi = r["ci95_pct"][dem]
        print(f"tuned vs production, {dem} demand: {r['improvement_pct'][dem]:+.2f} % (95 % CI {lo:+.2f} .. {hi:+.2f})")
    print(f"decision: {r['decision']} ({r['decision_reason']})")
    name = r["candidate"]["name"]
    print(f"report: {d / 'report.md'} and report.json, {len(r['plots'])} plots")
    print(f"candidate: cp {d / CANDIDATE} conf/policy/{name}.yaml && python -m experiment policy={name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
