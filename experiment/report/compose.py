"""The test configs: the sweep's own overrides re-composed with the held-out window and each demand source,
for each parameter set and replication (common random numbers)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from experiment.report._util import _first_line, _select
from experiment.report.settings import (AUTO_WINDOW, DEMANDS, FIXED_TEST_WINDOW, ROLLING_WINDOW, SETS, ReportError,
                                       ReportSettings, _conf_dir)
from experiment.study import Sweep, candidate_name


def _compose(overrides: list[str]) -> DictConfig:
    """Compose the navitune config as ``python -m experiment <overrides>`` would (inside a running Hydra app,
    e.g. the end-of-sweep callback, with the app's own Hydra)."""
    import warnings

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiment.registration import register_configs

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
    """For each (parameter set, demand source): the composed config and one SimParams per replication the decision
    may look at (seed ``window.seed + r`` for both sets: common random numbers)."""
    from experiment.app import sim_params
    from experiment.config import ConfigError, validate

    extra = list(extra)
    user_keys = {o.split("=", 1)[0].lstrip("+~") for o in extra}
    tuning = _select(sweep.config, "window") or {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    window = held_out_window_overrides(settings.window, tuning)
    for demand in DEMANDS:
        base = _compose(_last_wins([*sweep.overrides, *window, f"demand={demand}", *extra]))
        if settings.match_scale:
            _match_scale(base, tuning, user_keys | ({"window.end"} if _is_rolling(tuning) else set()))
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
            for r in range(settings.design().looks[-1]):
                rep = copy.deepcopy(cfg)
                rep.window.seed = int(base.window.seed) + r
                try:
                    validate(rep)
                except ConfigError as err:
                    raise ReportError(str(err)) from None
                runs.append(sim_params(rep))
            out[(name, demand)] = {"cfg": cfg, "sim": runs}
    return out



def _is_rolling(window: Any) -> bool:
    return isinstance(window, dict) and window.get("as_of") is not None


def held_out_window_overrides(option: str, tuning: Any) -> list[str]:
    """The overrides that select the test window. ``auto`` (the default) and ``rolling`` after a sweep tuned on
    ``window=rolling``: the same cycle's held-out test span (same as_of and lengths, ``window.span=test``, its
    own seeds); ``auto`` after a fixed tuning window: test_week; any other option: that option."""
    if option == AUTO_WINDOW and not _is_rolling(tuning):
        return [f"window={FIXED_TEST_WINDOW}"]
    if option not in (AUTO_WINDOW, ROLLING_WINDOW):
        return [f"window={option}"]
    cycle = [f"window.{k}={tuning[k]}" for k in ("as_of", "tune_days", "test_days")] if _is_rolling(tuning) else []
    return [f"window={ROLLING_WINDOW}", *cycle, "window.span=test"]


def _match_scale(cfg: DictConfig, tuning: Any, user_keys: set[str]) -> None:
    """Give the test window the tuning window's length and fleet caps (unless set on the command line): a
    smoke sweep gets a smoke-sized report; the default sweep's 7-day tuning week gives the full test week.
    A rolling test span keeps its own length (window.test_days, ending at as_of)."""
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
