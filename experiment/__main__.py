"""``python -m experiment`` (console script ``navitune``): compose the config with Hydra and run the task."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiment.config import register_configs

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
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
        m = re.fullmatch(r"\+?([a-z_/]+)=([^()\[\]{}]+)", arg)
        if not m or m.group(1) not in GROUPS + HYDRA_GROUPS:
            continue
        group, value = m.groups()
        options = group_options(group)
        for choice in value.split(","):
            if choice not in options:
                return f"navitune: unknown {group} {choice!r}; allowed: {', '.join(options)}"
    return None


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


INFO_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}
SWEEP_SYNTAX = re.compile(r"[(,]")


VALUE_FLAGS = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package",
               "--experimental-rerun", "-c", "--cfg"}


def check_override_syntax(argv: list[str]) -> str | None:
    """One line for an override Hydra cannot parse, e.g. ``policy.gamma=interval(a,1)`` (Hydra's own
    message spans four lines and names the reason only on the third)."""
    from hydra_plugins.navitune_optuna.overrides import first_bad_override

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

    from experiment.config import ConfigError, validate

    overrides = [a for a in argv if not a.startswith("-") and not SWEEP_SYNTAX.search(a.split("=", 1)[-1])]
    try:
        with initialize_config_dir(config_dir=CONF_DIR):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        return composition_error(err, argv)
    try:
        validate(cfg)
    except ConfigError as err:
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
        return (f"navitune: invalid config {key}={redact(value)!r}: it holds a secret in clear, which would "
                "be saved with the run (.hydra/, MLflow); allowed: a reference such as "
                "http://user:${oc.env:VAR}@host or ?password=${oc.env:VAR}, with VAR set in the environment")
    return None


def check_launcher(argv: list[str], overrides: list[str]) -> str | None:
    """A sweep's ``hydra`` settings: no secret in clear (:func:`check_secrets`), and with
    ``hydra/launcher=kfp`` its settings, proxy and study storage, in one line, before Hydra's callbacks and
    sweeper write anything (Hydra would only instantiate the launcher after them)."""
    if not {"-m", "--multirun"} & set(argv):
        return None
    from hydra import compose, initialize_config_dir

    from hydra_plugins.navitune_kfp.checks import preflight as kfp_preflight

    # hydra.* overrides cannot be sweeps (Hydra forbids it): keep those the task filter above left out
    hydra_args = [a for a in argv if a.lstrip("+").startswith("hydra.") and a not in overrides]
    try:
        with initialize_config_dir(config_dir=CONF_DIR):
            cfg = compose(config_name="config", overrides=overrides + hydra_args, return_hydra_config=True)
    except Exception:  # noqa: BLE001 - a composition problem: Hydra reports it itself
        return None
    return kfp_preflight(cfg) or check_secrets(cfg)


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
        return f"navitune: invalid config {key}={value!r}; allowed: {expected}"
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
        return f"navitune: unknown config key {key}; allowed: {allowed}"
    return None


def main() -> None:
    problem = preflight(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    if not INFO_FLAGS & set(sys.argv[1:]):
        import experiment.app  # noqa: F401  (compiles the simulator here, before a launcher forks jobs)
    task()


if __name__ == "__main__":
    main()
