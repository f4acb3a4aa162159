"""``python -m experiment`` (console script ``navitune``): compose the config with Hydra and run the task."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiment.config import register_configs

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
GROUPS = ("region", "demand", "window", "policy", "sink", "experiment")

register_configs()


def check_group_choices(argv: list[str]) -> str | None:
    """One clear line for an unknown group option (Hydra's own message spans several lines)."""
    for arg in argv:
        m = re.fullmatch(r"\+?([a-z_]+)=([^()\[\]{}]+)", arg)
        if not m or m.group(1) not in GROUPS:
            continue
        group, value = m.groups()
        options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
        for choice in value.split(","):
            if choice not in options:
                return f"navitune: unknown {group} {choice!r}; allowed: {', '.join(options)}"
    return None


@hydra.main(config_path=CONF_DIR, config_name="config", execution_whitelist=["experiment.*", "hydra_plugins.*"])
def task(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from experiment.app import run

    return run(cfg, HydraConfig.get().runtime.output_dir)


INFO_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}
SWEEP_SYNTAX = re.compile(r"[(,]")


def preflight(argv: list[str]) -> str | None:
    """Compose the config as Hydra will and validate it, before Hydra creates any directory.

    Sweep overrides (``a,b``, ``choice(...)``, ``interval(...)``) are left to the sweeper; composition
    errors are left to Hydra, which reports them itself.
    """
    problem = check_group_choices(argv)
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
    except (HydraException, OmegaConfBaseException):
        return None
    try:
        validate(cfg)
    except ConfigError as err:
        return str(err)
    return None


def main() -> None:
    problem = preflight(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    task()


if __name__ == "__main__":
    main()
