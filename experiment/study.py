"""A finished sweep as its readers see it: its directory, saved config, best parameters, study and baseline.

The report, the registry's decisions and ``navitune retune`` all read sweeps through this module's public names
(it imports none of them), so none reaches into another's private helpers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf
from hydra_plugins.navitune_shared.errors import message_line
from hydra_plugins.navitune_shared.protocol import BASELINE

from experiment.errors import ReportError

REVENUE_PLOT = "revenue_by_pattern.png"
CANDIDATE = "policy_candidate.yaml"
#: every file the report may write into the sweep directory (plots only when they could be drawn)
REPORT_FILES = ("report.json", "report.md", CANDIDATE, REVENUE_PLOT,
                "optimization_history.png", "param_importances.png", "parallel_coordinate.png")
# the report chooses these itself: the sweep's own values of them are not reused
OWN_KEYS = ("window", "demand", "demand.source")


def select(config: Any, key: str, resolve: bool = True) -> Any:
    """The value at ``key`` of a saved config as plain Python, None when absent or unresolvable here;
    ``resolve=False`` keeps ``${...}`` as written (overrides). The report's lookups are this one."""
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


def _first_line(err: BaseException) -> str:
    return message_line(err) or type(err).__name__


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


def load_sweep(sweep_dir: str | Path, config: DictConfig | None = None) -> Sweep:
    """The finished sweep in ``sweep_dir``: its best parameters and the config it ran with."""
    from experiment.windows import register_resolver

    register_resolver()  # a rolling window's saved dates are ${navitune.rolling:...} interpolations
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
        config = saved_config(d)
    best = dict(results["best_params"])
    searched = set(best) | set((select(config, "hydra.sweeper.params") or {}).keys())
    storage, problem = resolved_storage(config)
    value = results.get("best_value")
    return Sweep(
        dir=d, config=config, best_params=best, best_value=None if value is None else float(value),
        overrides=reusable_overrides([str(o) for o in (select(config, "hydra.overrides.task", resolve=False) or [])],
                                      searched),
        study_name=select(config, "hydra.sweeper.study_name"), storage=storage, storage_problem=problem,
    )


def saved_config(d: Path) -> DictConfig:
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


def reusable_overrides(overrides: Sequence[str], searched: set[str]) -> list[str]:
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


def resolved_storage(config: DictConfig) -> tuple[str | None, str | None]:
    """The study storage with its interpolations resolved (``${paths.outputs}``, ``${oc.env:...}`` from the
    environment) and a relative file path made absolute against the sweep's working directory."""
    try:
        value = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    except Exception as err:  # e.g. an environment variable the storage URL needs is not set here
        return None, f"hydra.sweeper.storage cannot be resolved: {_first_line(err)}"
    if value is None or str(value) in ("", "None", "null"):
        return None, "the study was kept in memory (hydra.sweeper.storage=null)"
    text, cwd = str(value), select(config, "hydra.runtime.cwd")
    for prefix in ("journal://", "sqlite:///"):
        if text.startswith(prefix) and cwd:
            path = text[len(prefix):]
            if path and not Path(path).is_absolute():
                return prefix + str(Path(cwd) / path), None
    return text, None


def load_study(sweep: Sweep) -> tuple[Any, str | None]:
    """The sweep's Optuna study (for the baseline trial and the plots), or None and why not."""
    if sweep.storage is None or not sweep.study_name:
        return None, sweep.storage_problem or "the sweep has no study name"
    if sweep.storage.startswith("journal://") and not Path(sweep.storage[len("journal://"):]).is_file():
        return None, f"no study journal at {sweep.storage[len('journal://'):]}"
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            from hydra_plugins.navitune_shared.storage import make_storage

            storage: Any = make_storage(sweep.storage)
        except ImportError:
            storage = sweep.storage
        return optuna.load_study(study_name=str(sweep.study_name), storage=storage), None
    except Exception as err:
        return None, f"study {sweep.study_name!r} not loaded: {type(err).__name__}: {_first_line(err)}"


def baseline(study: Any, sweep: Sweep) -> tuple[dict[str, Any] | None, str]:
    """The production parameters the sweep compared against: its baseline trial (user attribute
    ``navitune:baseline`` == 0, enqueued from the production policy), else the sweep's policy option."""
    if study is not None:
        from optuna.trial import TrialState

        trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(BASELINE) == 0]
        trials.sort(key=lambda t: (t.state != TrialState.COMPLETE, t.number))
        if trials:
            return dict(trials[0].params), f"study baseline trial {trials[0].number}"
    choice = select(sweep.config, "hydra.runtime.choices.policy") or "production"
    return None, f"conf/policy/{choice}.yaml"


def finished_since(sweep: Sweep, started: dt.datetime) -> bool:
    """Did a trial of the sweep's study finish after ``started``? (A re-run of a complete study launches
    nothing, and its report would repeat the last one.) True when the study cannot be read."""
    study, _ = load_study(sweep)
    if study is None:
        return True
    from optuna.trial import TrialState

    return any(t.datetime_complete is not None and t.datetime_complete >= started
               for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED))


def candidate_name(sweep: Sweep) -> str:
    return f"tuned_{sweep.study_name or sweep.dir.name}"


def report_paths(sweep_dir: str | Path) -> list[Path]:
    """The report files present in ``sweep_dir`` (report.json, report.md, the candidate, the PNGs), e.g. for
    attaching them to the sweep's MLflow parent run. Cheap: no simulation, no heavy import."""
    d = Path(sweep_dir)
    return [d / name for name in REPORT_FILES if (d / name).is_file()]
