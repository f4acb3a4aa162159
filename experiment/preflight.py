"""The CLI's checks before Hydra runs anything: every bad input is one line naming the key and the allowed
values, before a directory, a study, a run or a pipeline exists (Hydra's own errors span many lines, and its
callbacks and sweeper write files before a launcher would see a bad setting)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra_plugins.navitune_shared.errors import invalid_text
from omegaconf import DictConfig, OmegaConf

from experiment.config import CONF_DIR as _CONF_DIR, ConfigError, check_env_set
from experiment.memory_budget import check_memory
from experiment.registration import register_configs
from experiment.service_checks import check_services
from experiment.errors import SinkError

CONF_DIR = str(_CONF_DIR)
GROUPS = ("region", "demand", "window", "policy", "sink", "proxy", "experiment", "search_space", "notify",
          "tracking", "scenario")

register_configs()


HYDRA_GROUPS = ("hydra/sweeper", "hydra/sweeper/sampler", "hydra/launcher")


def group_options(group: str) -> list[str]:
    """Options of a config group: files under conf/ plus what plugins registered in the ConfigStore."""
    options = {p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml") if not p.stem.startswith("_")}
    if group.startswith("hydra/"):
        from hydra.core.config_store import ConfigStore
        from hydra.core.plugins import Plugins

        Plugins.instance()  # plugins register their configs on import
        options |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group) if n.endswith(".yaml")}
    return sorted(options)


def check_group_choices(argv: list[str]) -> str | None:
    """One clear line for an unknown group option (Hydra's own message spans several lines)."""
    for arg in argv:
        m = re.fullmatch(r"\+?([a-z_/]+)=([^()\[\]{}]*)", arg)
        if not m or m.group(1) not in GROUPS + HYDRA_GROUPS:
            continue
        group, value = m.groups()
        options = group_options(group)
        if not value.strip():
            return f"navitune: empty {group} choice ({arg!r}); allowed: {', '.join(options)}"
        for choice in value.split(","):
            if choice not in options:
                return f"navitune: unknown {group} {choice!r}; allowed: {', '.join(options)}"
    return None


INFO_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}
SWEEP_SYNTAX = re.compile(r"[(,]")  # may be a sweep: is_sweep asks Hydra's parser


def is_sweep(override: str) -> bool:
    """Is ``override`` a sweep for Hydra (``a,b``, ``range(...)``, ``choice(...)``, ``interval(...)``,
    ``glob(...)``)? Hydra's own parser decides, so a list ``[a,b]``, a dict or a quoted ``'a,b'`` is one value (the
    checks compose and validate it; left out, ``scenario.changes=[{...}]`` reached the job unchecked); what it cannot
    parse is left to :func:`check_override_syntax`."""
    if not SWEEP_SYNTAX.search(override.split("=", 1)[-1]):
        return False
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return bool(OverridesParser.create().parse_overrides([override])[0].is_sweep_override())
    except Exception:  # noqa: BLE001 - a syntax error: check_override_syntax names it
        return True


COMMANDS = ("champion", "retune", "submit", "schedule")  # experiment.__main__ dispatches these
VALUE_FLAGS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package",
               "--experimental-rerun", "-c", "--cfg"}


def check_override_syntax(argv: list[str]) -> str | None:
    """One line for an override Hydra cannot parse, e.g. ``policy.gamma=interval(a,1)`` (Hydra's own
    message spans four lines and names the reason only on the third)."""
    from hydra_plugins.navitune_optuna.overrides import first_bad_override

    if argv and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", argv[0]):  # a word, not key=value: a command's name
        return (f"navitune: unknown command {argv[0]!r}; allowed: {', '.join(COMMANDS)}, or config overrides "
                "key=value (navitune --help)")
    if INFO_FLAGS & set(argv):  # --info, --cfg, -sc ... take free-form values: Hydra checks those runs
        return None
    overrides, skip = [], False
    for arg in argv:
        if skip or arg.startswith("-"):
            skip = arg in VALUE_FLAGS and not skip
            continue
        overrides.append(arg)
    bad = first_bad_override(overrides)
    return None if bad is None else f"navitune: invalid override {bad[0]!r}: {bad[1]}"


def preflight(argv: list[str]) -> str | None:
    """Compose the config as Hydra will and validate it, before Hydra creates any directory.

    Sweep overrides (``a,b``, ``choice(...)``, ``interval(...)``) are left to the sweeper; composition
    errors are left to Hydra, which reports them itself.
    """
    problem = check_override_syntax(argv) or check_group_choices(argv)
    if problem or INFO_FLAGS & set(argv):
        return problem
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiment.config import validate

    overrides = [a for a in argv if not a.startswith("-") and not is_sweep(a)]
    try:
        with initialize_config_dir(config_dir=CONF_DIR):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        return composition_error(err, argv)
    try:
        validate(cfg)
        check_services(cfg)
        check_memory(cfg)
        check_sink(cfg)
    except (ConfigError, SinkError) as err:
        return str(err)
    return check_secrets(cfg) or check_launcher(argv, overrides)


def check_secrets(cfg: DictConfig) -> str | None:
    """One line for a secret written in clear in the config (a URL's password, a secret query value, a
    webhook's path): Hydra saves the config and the command line with the run, so a secret must come by
    reference (``${oc.env:VAR}``), resolved only where it is used."""
    from omegaconf import OmegaConf

    from hydra_plugins.navitune_shared.redact import literal_secrets, redact

    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    hydra_node = container.get("hydra")
    if isinstance(hydra_node, dict):  # the command line as typed: its keys are checked where they land
        hydra_node.pop("overrides", None)
        (hydra_node.get("job") or {}).pop("override_dirname", None)
    for key, value in literal_secrets(container).items():
        if key.endswith("_env"):  # holds a variable's NAME; its owner refuses a value there with its own line
            continue
        return secret_in_clear("navitune", f"config {key}", value)
    return None


def secret_in_clear(head: str, key: str, value: str, where: str = "saved with the run (.hydra/, MLflow)",
                    allowed: str = "a reference such as http://user:${oc.env:VAR}@host or ?password=${oc.env:VAR}, "
                                   "with VAR set in the environment") -> str | None:
    """The one line refusing a secret written in clear (a URL's password or lone user, a secret query value, a
    webhook's path) in ``value``, the value masked; None if it holds none. Used for the config
    (:func:`check_secrets`) and for command-line options that end up in a compiled pipeline (``--driver-host``)."""
    from hydra_plugins.navitune_shared.redact import holds_secret, redact

    if not holds_secret(value):
        return None
    return f"{head}: invalid {key}={redact(value)!r}: it holds a secret in clear, which would be {where}; allowed: {allowed}"


def check_sink(cfg: DictConfig) -> None:
    """A corrupt DuckDB file fails here, before Hydra creates the run (BigQuery is reached in the job)."""
    if cfg.sink.kind == "duckdb":
        from experiment.sinks.duckdb_sink import check_duckdb

        check_duckdb(str(cfg.sink.path))


def check_launcher(argv: list[str], overrides: list[str]) -> str | None:
    """A sweep's ``hydra`` settings: no secret in clear (:func:`check_secrets`); the launcher (kfp: settings, proxy
    and study storage; process_pool: its settings and how many jobs this machine holds), the sweeper's settings and
    the search space, in one line, before Hydra's callbacks and sweeper write anything (Hydra would only
    instantiate the sweeper and launcher after them)."""
    if not {"-m", "--multirun"} & set(argv):
        return None
    from hydra import compose, initialize_config_dir

    from hydra_plugins.navitune_kfp.checks import preflight as kfp_preflight
    from hydra_plugins.navitune_process_pool.process_pool_launcher import preflight as pool_preflight
    from hydra_plugins.navitune_optuna.validation import check_node

    # hydra.* overrides cannot be sweeps (Hydra forbids it): keep those the task filter above left out
    hydra_args = [a for a in argv if a.lstrip("+").startswith("hydra.") and a not in overrides]
    try:
        with initialize_config_dir(config_dir=CONF_DIR):
            cfg = compose(config_name="config", overrides=overrides + hydra_args, return_hydra_config=True)
    except Exception:  # noqa: BLE001 - a composition problem: Hydra reports it itself
        return None
    try:
        check_env_set(cfg)  # the hydra node's references too (hydra.sweeper.storage's password)
    except ConfigError as err:
        return str(err)
    problem = (kfp_preflight(cfg) or check_secrets(cfg) or pool_preflight(cfg)
               or check_node(OmegaConf.select(cfg, "hydra.sweeper")) or check_report(cfg))
    if problem:
        return problem
    try:
        check_memory(cfg, *jobs_at_once(cfg))
    except ConfigError as err:
        return str(err)
    return check_search_space(cfg, argv, *jobs_at_once(cfg))


def check_report(cfg: DictConfig) -> str | None:
    """The end-of-sweep report's settings (``hydra.callbacks.report.*``), checked as the report checks them: Hydra
    builds the callback only after the sweep's directory exists, and ``retune`` writes its lock and record before
    the sweep starts, so a report that cannot run (``replications=0``) is refused here, before either."""
    from experiment.report.settings import ReportError, ReportSettings, under

    node = OmegaConf.select(cfg, "hydra.callbacks.report", default=None)
    if not isinstance(node, DictConfig):
        return None
    values = OmegaConf.to_container(node, resolve=True)
    assert isinstance(values, dict)
    try:
        ReportSettings.from_node(values).check()
    except ReportError as err:
        return under(str(err).replace("navitune.report:", "navitune:", 1))
    return None


def jobs_at_once(cfg: DictConfig) -> tuple[int, str]:
    """Simulations a sweep runs on this machine at the same time (a remote kfp backend runs none here), and the
    setting that decides it."""
    launcher = OmegaConf.select(cfg, "hydra.launcher")
    target = str(OmegaConf.select(launcher, "_target_", default=""))
    if target.endswith(".BasicLauncher") or (target.endswith(".KFPLauncher") and (
            launcher.get("backend") != "local" or launcher.get("compile_only"))):
        return (1 if target.endswith(".BasicLauncher") else 0), "hydra/launcher"
    n, key = int(launcher.get("n_jobs") or 1), "hydra.launcher.n_jobs"
    sweeper = OmegaConf.select(cfg, "hydra.sweeper")
    if str(OmegaConf.select(sweeper, "_target_", default="")).startswith("hydra_plugins.navitune_optuna."):
        in_flight = int(sweeper.get("n_jobs") or 1)
        if in_flight < n:
            n, key = in_flight, "hydra.sweeper.n_jobs"
    return n, key


def check_search_space(cfg: DictConfig, argv: list[str], jobs: int = 1, jobs_key: str = "") -> str | None:
    """Every bound of the search space (``hydra.sweeper.params`` and sweeps on the command line) and every
    enqueued trial must be a value the task accepts, and ``jobs`` such trials must fit in memory at once:
    refused now, not as failed trials."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {str(k): str(v) for k, v in (OmegaConf.select(cfg, "hydra.sweeper.params") or {}).items()}
    for arg in argv:
        key, eq, value = arg.partition("=")
        key = key.lstrip("+")
        is_group = key in GROUPS or "/" in key or (Path(CONF_DIR) / key).is_dir()  # a sweep over group options
        if eq and not arg.startswith("-") and is_sweep(arg) and not key.startswith("hydra") \
                and not is_group:
            params[key] = value
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    parser = OverridesParser.create()
    for key, text in params.items():
        try:
            override = parser.parse_overrides([f"{key}={text}"])[0]
        except Exception:  # noqa: BLE001 - the override check above reports syntax
            continue
        for value in bounds(override):
            allowed = rejected(task, key, value, jobs, jobs_key)
            if allowed is not None:
                return (f"navitune: invalid search range {key}={text}: it reaches {key}={value!r}; "
                        f"allowed: {allowed}")
    for i, trial in enumerate(OmegaConf.select(cfg, "hydra.sweeper.enqueue") or []):
        for key, value in trial.items():
            allowed = rejected(task, str(key), value, jobs, jobs_key)
            if allowed is not None:
                return f"navitune: invalid hydra.sweeper.enqueue[{i}]: {key}={value!r}; allowed: {allowed}"
    return None


def bounds(override: Any) -> list[Any]:
    """The values at the edges of a search dimension (every value of a choice)."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    value = override.value()
    if isinstance(value, IntervalSweep):
        return [value.start, value.end]
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        return [values[0], values[-1]] if values else []
    if isinstance(value, ChoiceSweep):
        return list(override.sweep_iterator())
    return [value]


def rejected(task: DictConfig, key: str, value: Any, jobs: int = 1, jobs_key: str = "") -> str | None:
    """What ``key`` allows if ``value`` is refused by the schema, :func:`validate` or the memory check of
    ``jobs`` such runs at once, else None."""
    import copy

    from omegaconf.errors import OmegaConfBaseException

    from experiment.config import validate

    cfg = copy.deepcopy(task)
    try:
        OmegaConf.update(cfg, key, value, force_add=False)
    except OmegaConfBaseException:
        return "a key and a value of the task's schema (see --cfg job)"
    try:
        validate(cfg)
        check_memory(cfg, max(jobs, 1), jobs_key)
    except ConfigError as err:
        return str(err).split("; allowed: ", 1)[-1]
    return None


def did_you_mean(key: str, allowed: str) -> str:
    """`` (did you mean policy.gamma?)`` for a typo of a known key (``polcy.gamma``, ``policy.gamm``), else ''."""
    import difflib

    from experiment.config import GROUP_SCHEMAS

    parent, _, leaf = key.rpartition(".")
    if parent and "." not in parent and parent not in GROUP_SCHEMAS:  # the group is the typo (polcy.gamma)
        group = difflib.get_close_matches(parent, sorted(GROUP_SCHEMAS), n=1, cutoff=0.6)
        return f" (did you mean {group[0]}.{leaf}?)" if group else ""
    names = [a.strip() for a in allowed.split(",")] if allowed != "see --cfg job" else []
    best = difflib.get_close_matches(leaf, names, n=1, cutoff=0.6)
    return f" (did you mean {parent}.{best[0]}?)" if parent and best else ""


def composition_error(err: Exception, argv: list[str]) -> str | None:
    """One line for a wrong type or an unknown key (Hydra's message spans several lines); None leaves
    the error to Hydra."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    from experiment.config import ROAD_WEIGHT_KEYS, schema_field

    cause = err.__cause__ or err
    key = getattr(cause, "full_key", None)
    if not key:
        return None
    value = next((o.split("=", 1)[1] for o in argv if o.lstrip("+~").split("=", 1)[0] == key), "?")
    group, _, rest = key.partition(".")
    if isinstance(cause, ValidationError):
        field = schema_field(group, rest)
        expected = f"a value of type {field.type}" if field is not None else "a value of the schema's type"
        return invalid_text("navitune", f"config {key}", value, expected)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        parent = key.rsplit(".", 1)[0]
        if parent == "policy.road_weights":
            allowed = ", ".join(ROAD_WEIGHT_KEYS)
        elif parent == "region.fleet_mix":
            from experiment.sim.shifts import SHIFT_KINDS

            allowed = ", ".join(SHIFT_KINDS)
        elif schema_field(group, "") is not None or "." not in parent:
            from dataclasses import fields

            node = schema_field(group, "")
            allowed = ", ".join(f.name for f in fields(node)) if node is not None else "see --cfg job"
        else:
            allowed = "see --cfg job"
        if "." not in key:  # a misspelt group (polcy.gamma): name the key as typed, suggest the group's
            typed = next((o.lstrip("+~").split("=", 1)[0] for o in argv
                          if o.lstrip("+~").split("=", 1)[0].startswith(f"{key}.")), key)
            return f"navitune: unknown config key {typed}{did_you_mean(typed, allowed)}; allowed: {allowed}"
        return f"navitune: unknown config key {key}{did_you_mean(key, allowed)}; allowed: {allowed}"
    return None


def compose_without_sweeps(argv: Any, hydra: bool = False) -> DictConfig:
    """The config ``argv`` composes with its sweep values left out (``a=1,2``, ``x=interval(...)``: the
    sweeper's), flags dropped and ``hydra.*`` overrides kept as written (their lists hold commas); with
    ``hydra=True`` the hydra node too. The one composition of the checks (CLI, retune, submit/schedule)."""
    from hydra import compose, initialize_config_dir

    args = [a for a in argv if not a.startswith("-")]
    overrides = [a for a in args if a.lstrip("+~").startswith("hydra.") or not is_sweep(a)]
    with initialize_config_dir(config_dir=CONF_DIR):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra)


def pin_as_of(argv: list[str]) -> list[str]:
    """``window=rolling`` without ``window.as_of``: today, resolved once here and passed on as an override, so
    the saved config, every job of a sweep (whenever it starts), the report and a resume all name the same
    day, and so the same study."""
    if INFO_FLAGS & set(argv) or any(a.lstrip("+~").startswith("window.as_of=") for a in argv):
        return argv
    try:
        window = compose_without_sweeps(argv).window
        as_of = window.get("as_of") if "as_of" in window else None
    except Exception:  # noqa: BLE001 - preflight composed the same config: nothing to pin then
        return argv
    return argv if as_of is None else [*argv, f"window.as_of={as_of}"]
