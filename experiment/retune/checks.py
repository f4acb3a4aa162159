"""``navitune retune``'s command line, checked before anything is written: every bad input is one line naming
the key and the allowed values (exit 2), and the result is a :class:`Plan` that fixes the cycle's as_of, study,
directory and the sweep's own command line."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Sequence

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.navitune_shared.protocol import ENV_TRIAL

USAGE = "navitune retune [--as-of YYYY-MM-DD] [overrides...]"
ALLOWED_ARGS = "--as-of YYYY-MM-DD and config overrides key=value"
#: window keys retune computes itself (from as_of), and hydra keys that fix the cycle's study and directory
COMPUTED_KEYS = ("window.span", "window.start", "window.end", "window.seed", "window.name", "window.cycle",
                 "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.sweeper.study_name", "hydra.callbacks.report.enabled")
SAMPLER_SEED = "hydra.sweeper.sampler.seed"
ALLOWED_WINDOW = "window=rolling (or leave it out) with window.tune_days, window.test_days, window.drivers, " \
                 "window.max_shift_h"
#: groups (and their keys) that fix WHAT a cycle tunes: one value each; a sweep there would tune them as parameters
ONE_VALUE_GROUPS = ("region", "scenario", "demand", "window")
#: the only keys a cycle's sweep may sweep: the policy it tunes (a sweep over tracking, sink, registry ... would
#: become a parameter of the cycle's study, and the cycle could never finish its report)
SWEEPABLE = ("policy.", "hydra.sweeper.params.")


class BadInput(Exception):
    """One line for the user; exit code 2, nothing written."""


class Unreachable(Exception):
    """MLflow could not be read at the start; exit code 1, nothing written."""


@dataclass
class Plan:
    """One cycle, fixed before anything runs."""

    as_of: str
    region: str
    scenario: str
    demand: str
    study: str
    uri: str  # the tracking URI (the registry), unmasked: it may carry credentials, never print it as is
    outputs: Path  # paths.outputs as composed (relative to the working directory, like Hydra's)
    overrides: list[str]  # the user's overrides (without window=rolling / window.as_of)
    sweep_argv: list[str]  # what ``python -m experiment`` gets for the cycle's sweep
    config: DictConfig  # the composed config with its hydra node (Slack settings, artifact location)
    champion: int | None = None  # the champion's version when the cycle started (set by the cycle)

    @property
    def cycle_dir(self) -> Path:
        return cycle_dir(self.outputs, self.region, self.scenario, self.as_of)

    @property
    def sweep_dir(self) -> Path:
        return self.cycle_dir / "sweep"


def cycle_dir(outputs: str | Path, region: str, scenario: str, as_of: str) -> Path:
    """``<paths.outputs>/retune/<region>/<scenario>/<as_of>``: one directory per cycle, so running the same
    cycle again finds it."""
    return Path(outputs) / "retune" / region / scenario / as_of


def _bad(text: str) -> BadInput:
    return BadInput(f"navitune retune: {text}")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one :class:`BadInput` line instead of a usage screen and exit."""

    def error(self, message: str) -> NoReturn:
        raise _bad(f"{message}; allowed: {ALLOWED_ARGS} (usage: {USAGE})")


def split_args(argv: Sequence[str], today: dt.date) -> tuple[str, list[str]]:
    """(as_of, overrides): ``--as-of DATE`` / ``--as-of=DATE`` (default ``today``) and ``key=value``
    overrides; any other flag (``-m``, ``--cfg``, ...) is refused."""
    from experiment.preflight import is_sweep
    from experiment.windows import AS_OF_FORMAT, MAX_AS_OF, MIN_AS_OF, parse_as_of

    def as_of_date(value: str) -> str:
        try:
            return parse_as_of(value).isoformat()
        except ValueError:
            raise _bad(f"invalid --as-of {value!r}; allowed: {AS_OF_FORMAT} between {MIN_AS_OF} and {MAX_AS_OF} "
                       "(default: today)") from None

    parser = _Parser(prog="navitune retune", usage=USAGE, add_help=False, allow_abbrev=False)
    parser.add_argument("--as-of", type=as_of_date, default=None, metavar="YYYY-MM-DD")
    known, rest = parser.parse_known_args(list(argv))  # the overrides are what is left, in their order
    for arg in rest:
        if arg in ("-m", "--multirun"):
            raise _bad(f"invalid argument {arg}: retune always runs its cycle's sweep; allowed: {ALLOWED_ARGS}")
        if arg.startswith("-"):
            raise _bad(f"invalid argument {arg}; allowed: {ALLOWED_ARGS} (usage: {USAGE})")
        if "=" not in arg:
            raise _bad(f"invalid argument {arg!r}: not an override; allowed: {ALLOWED_ARGS} (usage: {USAGE})")
    as_of: str | None = known.as_of
    overrides: list[str] = rest
    kept: list[str] = []
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        if not key.startswith(SWEEPABLE) and is_sweep(o):  # experiment.preflight.is_sweep
            raise _bad(f"invalid {key}={value}: a sweep, and a cycle tunes the policy of one region, scenario, "
                       "demand, window and setting; allowed: one value for region, scenario, demand and window.* "
                       "and every other key (sweep policy.* only; one cycle, or schedule, per region and scenario)")
        if key == "window":
            if value != "rolling":
                raise _bad(f"invalid override {o}: a cycle tunes and tests on its rolling windows; allowed: "
                           f"{ALLOWED_WINDOW}")
            continue
        if key == "window.as_of":
            try:
                day = parse_as_of(value).isoformat()
            except ValueError:
                raise _bad(f"invalid config window.as_of={value!r}; allowed: {AS_OF_FORMAT} between {MIN_AS_OF} "
                           f"and {MAX_AS_OF} (default: today)") from None
            if as_of is not None and day != as_of:
                raise _bad(f"invalid override {o}: it contradicts --as-of {as_of}; allowed: one as_of (--as-of)")
            as_of = day
            continue
        if key in COMPUTED_KEYS:
            raise _bad(f"invalid override {o}: retune sets {key} itself (the cycle's windows, study and "
                       f"directory); allowed: --as-of and the other overrides")
        kept.append(o)
    return as_of or today.isoformat(), kept


def _compose(overrides: list[str]) -> DictConfig:
    from experiment.preflight import compose_without_sweeps

    return compose_without_sweeps(overrides, hydra=True)


def sweep_argv(as_of: str, scenario: str, overrides: list[str]) -> list[str]:
    """The cycle's sweep: rolling windows at as_of, its own study (the scenario in its name: two scenarios'
    cycles at one as_of are two studies) and directory, job directories named by trial number (a resumed
    cycle adds to them instead of overwriting the first run's), and the sampler's seed of this cycle."""
    return ["-m", *overrides, *champion_base(overrides), *own_overrides(as_of, scenario),
            *sampler_seed(as_of, overrides), *auto_promotion(overrides)]


def champion_base(overrides: list[str]) -> list[str]:
    """A cycle tunes from the champion as a whole (``policy=champion``): its untuned keys too, not today's
    conf/policy/production.yaml's, so the baseline is the champion and the candidate differs from it only in
    what the search space tunes. A ``policy=...`` the user gives wins."""
    if any(o.lstrip("+~").split("=", 1)[0] == "policy" for o in overrides):
        return []
    return ["policy=champion"]


def auto_promotion(overrides: list[str]) -> list[str]:
    """A cycle decides with ``registry.promotion=auto`` (a plain sweep's default is ``manual``); the user's
    ``registry.promotion=manual`` wins. Every guard still applies, the report's scale included."""
    if any(o.lstrip("+~").split("=", 1)[0] == "registry.promotion" for o in overrides):
        return []
    return ["registry.promotion=auto"]


def sampler_seed(as_of: str, overrides: list[str]) -> list[str]:
    """Each cycle's sampler starts from its own seed (the cycle's tuning seed, from as_of): with the search
    space's fixed seed every cycle would propose the same start-up trials. A seed the user gives wins; the
    same as_of gets the same seed, so a resumed cycle stays reproducible."""
    if any(o.lstrip("+~").split("=", 1)[0] == SAMPLER_SEED for o in overrides):
        return []
    from experiment.windows import cycle_seed

    return [f"{SAMPLER_SEED}={cycle_seed(dt.date.fromisoformat(as_of))}"]


def own_overrides(as_of: str, scenario: str) -> list[str]:
    """What retune adds to the user's overrides (last, so they win)."""
    return ["window=rolling", f"window.as_of={as_of}", f"window.cycle=rolling_{as_of}_{scenario}",
            f"hydra.sweep.dir='${{paths.outputs}}/retune/${{region.name}}/{scenario}/{as_of}/sweep'",
            f"hydra.sweep.subdir='${{oc.select:hydra.job.env_set.{ENV_TRIAL},${{hydra.job.num}}}}'"]


def plan(argv: Sequence[str], today: dt.date | None = None) -> Plan:
    """The command line checked, nothing written (BadInput, exit 2). The champion is checked by
    :func:`champion_version` once the cycle is known not to be decided already (a decided cycle needs no
    registry to print its record)."""
    from experiment.preflight import check_group_choices, check_override_syntax, is_sweep, preflight

    from experiment.windows import utc_today

    as_of, overrides = split_args(argv, today or utc_today())
    problem = check_override_syntax(overrides) or check_group_choices(overrides)
    if problem:
        raise BadInput(problem)
    task = [o for o in overrides if not is_sweep(o)]
    base = ["window=rolling", f"window.as_of={as_of}"]
    try:
        cfg = _compose([*task, *base])
    except Exception as err:  # noqa: BLE001 - the full check names it in one line (Hydra's own spans several)
        first = (str(err.__cause__ or err).strip().splitlines() or [""])[0]
        raise BadInput(preflight(["-m", *overrides, *base]) or f"navitune retune: {first}") from None
    from experiment.config import ConfigError, check_env_set

    try:
        check_env_set(cfg)  # before anything below resolves the config (tracking.uri may read a password)
    except ConfigError as err:
        raise BadInput(str(err).replace("navitune:", "navitune retune:", 1)) from None
    if OmegaConf.select(cfg, "tracking.kind") == "off" or OmegaConf.select(cfg, "tracking.uri") in (None, ""):
        raise BadInput("navitune retune: invalid config tracking=off: the cycle's decision needs the champion in "
                       "MLflow's Model Registry; allowed: tracking=local or tracking=server")
    scenario, region = str(cfg.scenario.name), str(cfg.region.name)
    argv_sweep = sweep_argv(as_of, scenario, overrides)
    # checked without policy=champion: the champion is looked up once the cycle is known not to be decided
    # (champion_version), so a decided cycle prints its record without MLflow
    problem = preflight([a for a in argv_sweep if a not in champion_base(overrides)])
    if problem:
        raise BadInput(problem.replace("navitune:", "navitune retune:", 1))
    full = _compose([*task, *own_overrides(as_of, scenario)])
    return Plan(as_of=as_of, region=region, scenario=scenario, demand=str(cfg.demand.source),
                study=str(full.hydra.sweeper.study_name), uri=str(cfg.tracking.uri),
                outputs=Path(str(cfg.paths.outputs)), overrides=overrides, sweep_argv=argv_sweep, config=full)


def champion_version(p: Plan) -> int:
    """The region's champion now (exit 2 without one, saying how to create it; exit 1 when MLflow is down).
    Reading never creates a local store."""
    from experiment.registry.resolver import cached_champion
    from experiment.registry.store import Registry, RegistryUnavailable

    try:
        champion = cached_champion(p.uri, p.region)
    except RegistryUnavailable as err:
        raise Unreachable(f"navitune retune: {err}; nothing was run") from None
    if champion is None:
        where = Registry.at(p.uri, p.region).settings.where
        raise BadInput(f"navitune retune: region {p.region} has no champion in {where}; create it with: "
                       f"navitune champion init region={p.region}")
    return champion.number
