"""Checks of the optuna_async settings that need no study, each failing with one line.

Two callers: the sweeper itself (a hook at the top of its constructor, before it instantiates the sampler and
pruner), and an app's preflight, which runs before Hydra's ``on_multirun_start`` callbacks write anything
(Hydra instantiates the sweeper only after them).

Study names: ``[A-Za-z0-9][A-Za-z0-9._-]{0,99}``. Optuna takes any string, but the name also becomes a KFP
experiment and run name (``<study>-t<trial>-a<attempt>``), an MLflow experiment name, a file name
(``tuned_<study>.yaml``, kfp.local's run directories) and an environment variable of every job; this set is
safe in all of them (no path separators, no leading dot, no quoting, no shell meaning) and short enough for
the run names built from it.
"""

from __future__ import annotations

import fnmatch
import re
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from hydra_plugins.navitune_shared.errors import invalid
from omegaconf import DictConfig, ListConfig, OmegaConf

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
STUDY_NAME_ALLOWED = "null or 1-100 characters of A-Z a-z 0-9 . _ - starting with a letter or a digit"
DIRECTIONS = ("minimize", "maximize")
# a sweep's budget: far above any real study (the benchmarks run a few thousand trials), low enough that a typo
# (n_trials=99999999999999999999) is refused instead of promising an ETA of 5.8e19 s
MAX_N_TRIALS = 100_000
N_TRIALS_ALLOWED = f"a whole number > 0, at most {MAX_N_TRIALS}"
# what the sweeper may instantiate (the same list it passes to Hydra's instantiate)
WHITELIST = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*", "optuna.pruners.*")


class SweeperConfigError(CompactHydraException):
    """Bad sweeper input, reported on one line before any trial is created."""


def invalid_setting(key: str, value: Any, allowed: str) -> SweeperConfigError:
    """The one-line error for ``hydra.sweeper.<key>=<value>`` (returned for the caller to raise)."""
    return invalid(SweeperConfigError, "optuna_async", f"hydra.sweeper.{key}", value, allowed)


def check_budget(*, n_trials: Any, n_jobs: Any, max_failure_rate: Any, max_retries: Any, stale_after_s: Any,
                 metric_names: Any = None, n_directions: int = 1) -> None:
    """The sweep's numbers: budget, parallelism, failure share, retries, staleness, one metric name per
    direction."""
    if not isinstance(n_trials, int) or not 0 < n_trials <= MAX_N_TRIALS:
        raise invalid_setting("n_trials", n_trials, N_TRIALS_ALLOWED)
    if not isinstance(n_jobs, int) or n_jobs <= 0:
        raise invalid_setting("n_jobs", n_jobs, "a whole number > 0")
    if not 0.0 <= float(max_failure_rate) <= 1.0:
        raise invalid_setting("max_failure_rate", max_failure_rate, "a share in [0, 1]")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise invalid_setting("max_retries", max_retries, "a whole number >= 0")
    if not float(stale_after_s) > 0:
        raise invalid_setting("stale_after_s", stale_after_s, "seconds > 0")
    if metric_names is not None and len(metric_names) != n_directions:
        raise invalid_setting("metric_names", metric_names, f"null or {n_directions} name(s), one per direction")


def check_settings(*, study_name: Any = None, direction: Any = None, storage: Any = None, pruner: Any = None,
                   sampler: Any = None) -> None:
    """Raise the sweeper's one-line error for the first setting it cannot run with."""
    if study_name is not None and not STUDY_NAME.fullmatch(str(study_name)):
        raise invalid_setting("study_name", study_name, STUDY_NAME_ALLOWED)
    _check_direction(direction)
    _check_storage(storage)
    for key, node in (("pruner", pruner), ("sampler", sampler)):
        target = _target(node)
        if target is not None and not any(fnmatch.fnmatchcase(target, p) for p in WHITELIST):
            allowed = "optuna.pruners.*, e.g. optuna.pruners.MedianPruner" if key == "pruner" else \
                "one of hydra/sweeper/sampler: tpe, random, cmaes, gp, qmc, nsgaii, nsgaiii, grid"
            raise invalid_setting(f"{key}._target_", target, allowed)
    _check_sampler_dependencies(_target(sampler))


#: samplers whose own dependencies navitune does not install (Optuna imports them at the first relative sample,
#: after the start-up trials: without this check a sweep fails at trial 11 with a traceback)
SAMPLER_NEEDS = {"optuna.samplers.GPSampler": ("torch", "PyTorch (pip install torch)")}


def _check_sampler_dependencies(target: str | None) -> None:
    import importlib.util

    module, what = SAMPLER_NEEDS.get(target or "", (None, ""))
    if module is not None and importlib.util.find_spec(module) is None:
        raise invalid_setting("sampler._target_", target, f"a sampler whose dependencies are installed: {target} "
                              f"needs {what}; or one of hydra/sweeper/sampler: tpe, random, cmaes, qmc, nsgaii, "
                              "nsgaiii, grid")


def check_node(sweeper: Any) -> str | None:
    """The one-line problem of a composed ``hydra.sweeper`` node of optuna_async, else None (an app's preflight)."""
    if sweeper is None or not str(OmegaConf.select(sweeper, "_target_", default="")).startswith(
            "hydra_plugins.navitune_optuna."):
        return None
    get = lambda key: OmegaConf.select(sweeper, key, default=None, throw_on_resolution_failure=False)  # noqa: E731
    try:
        check_settings(study_name=get("study_name"), direction=get("direction"), storage=get("storage"),
                       pruner=get("pruner"), sampler=get("sampler"))
        for key, ok, allowed in (
            ("n_trials", lambda v: _whole(v) and 0 < v <= MAX_N_TRIALS, N_TRIALS_ALLOWED),
            ("n_jobs", lambda v: _whole(v) and v > 0, "a whole number > 0"),
            ("max_retries", lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
            ("max_failure_rate", lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a share in [0, 1]"),
            ("stale_after_s", lambda v: isinstance(v, (int, float)) and v > 0, "seconds > 0"),
        ):
            if key in sweeper and not ok(get(key)):
                raise invalid_setting(key, get(key), allowed)
    except SweeperConfigError as err:
        return str(err)
    return None


def quote(value: str) -> str:
    """``value`` as a quoted Hydra override value: read back as exactly this string, never as a number, a
    bool, null or a list (``'1e5'``, ``'null'``, ``'a,b'``)."""
    # Hydra reads a backslash as an escape only before a quote (or the closing quote)
    text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, str(value))
    return "'" + text.replace("'", "\\'") + "'"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _target(node: Any) -> str | None:
    if isinstance(node, (DictConfig, dict)):
        target = node.get("_target_")
        return None if target is None else str(target)
    return None


def _check_direction(direction: Any) -> None:
    if direction is None:
        return
    values = list(direction) if isinstance(direction, (list, tuple, ListConfig)) else [direction]
    names = [v.name if isinstance(v, Enum) else str(v) for v in values]
    if not names or any(n not in DIRECTIONS for n in names):
        shown = names[0] if len(names) == 1 else names
        raise invalid_setting("direction", shown, "minimize, maximize, or a list of them (one per objective)")


def _check_storage(storage: Any) -> None:
    """A journal file must be a file in a directory that exists or can be created (RDB URLs are checked when
    the sweeper connects, and never printed here: they may hold a password)."""
    text = "" if storage is None else str(storage)
    if not text.startswith("journal://"):
        return
    path = Path(text[len("journal://"):]).expanduser().absolute()
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not text[len("journal://"):] or path.is_dir() or not parent.is_dir():
        raise invalid_setting("storage", text, "journal:///PATH of a journal file (not a directory, in a directory that exists "
                                     "or can be created), an RDB URL, or null")
