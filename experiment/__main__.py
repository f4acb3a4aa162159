"""``python -m experiment`` (console script ``navitune``): a thin dispatcher.

A first word ``champion``, ``retune``, ``submit`` or ``schedule`` runs that command; ``--help`` prints
navitune's own help (the commands and the config groups a user chooses) and ``--help-all`` Hydra's full help;
anything else is checked (:mod:`experiment.preflight`) and handed to the Hydra task (:mod:`experiment.task`).
The commands are imported only when named: each imports what only it needs (kfp, MLflow's registry).
"""

from __future__ import annotations

import sys
from pathlib import Path

from experiment.preflight import CONF_DIR, INFO_FLAGS, pin_as_of, preflight

COMMANDS = {
    "champion": "the champion policy in MLflow's Model Registry: init, show, history, promote, rollback, decide",
    "retune": "one re-tuning cycle: sweep, report, decide (--as-of YYYY-MM-DD; docs/retune.md)",
    "submit": "run a sweep or a cycle on the cluster, as a KFP driver run (docs/runbook.md)",
    "schedule": "a recurring KFP run of retune: create, list, pause, resume, delete (docs/runbook.md)",
}
#: the config groups a user chooses on the command line (``group=option``), in the order of conf/config.yaml
GROUPS = ("region", "demand", "window", "policy", "scenario", "sink", "tracking", "proxy", "search_space",
          "experiment", "notify")
HELP_ALL = ("--help-all", "--hydra-help")


def group_options(group: str) -> list[str]:
    """The options of a config group as a user writes them: its YAML files, without the internal ones
    (``_optuna_async``) and the schemas (``*_schema``, registered in code, never files)."""
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))


def usage() -> str:
    """navitune's help: commands, config groups and where the rest is; about a screen."""
    lines = ["usage: navitune [group=option ...] [key=value ...] [-m]   one simulation, or with -m a sweep",
             "       navitune COMMAND [args]                          (navitune COMMAND --help)", "",
             "commands:"]
    lines += [f"  {name:<10}{text}" for name, text in COMMANDS.items()]
    lines += ["", "config groups (group=option; '+' for experiment and notify, e.g. +experiment=smoke):"]
    lines += [f"  {group:<14}{', '.join(group_options(group))}" for group in GROUPS]
    lines += ["  hydra/launcher process_pool (default with -m), kfp (docs/cluster.md)", "",
              "examples:",
              "  navitune                                  the production policy, one week in tokyo_central",
              "  navitune -m                               tune it (search_space=navi3, 27 trials)",
              "  navitune policy.gamma=0.9 window=smoke    one value changed, a one-day run",
              "  navitune --cfg job                        the composed config, nothing run", "",
              "every key and its value: navitune --cfg job; Hydra's own help and flags: navitune --help-all",
              "docs: README.md, docs/architecture.md"]
    return "\n".join(lines)


def load_simulator() -> None:
    """Import the simulator here, before a launcher forks jobs. After an install (or a change of experiment/sim)
    Numba compiles it first, ~8 s of silence: on a terminal, one line says what is happening, and goes."""
    tty = sys.stderr.isatty()
    if tty:
        print("navitune: loading the simulator (the first run after an install compiles it, ~8 s)...",
              end="", file=sys.stderr, flush=True)
    try:
        import experiment.app  # noqa: F401
    finally:
        if tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)  # the line goes: the run's own output follows


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] in (["submit"], ["schedule"]):  # the sweep on the cluster (docs/runbook.md)
        from experiment.cluster import schedule, submit

        raise SystemExit((submit if argv[0] == "submit" else schedule).main(argv[1:]))
    if argv[:1] == ["champion"]:  # navitune champion init|show|history|promote|rollback|decide
        from experiment.champion import main as champion

        raise SystemExit(champion(argv[1:]))
    if argv[:1] == ["retune"]:  # navitune retune [--as-of DATE] [overrides]: one re-tuning cycle
        from experiment.retune.cli import main as retune

        raise SystemExit(retune(argv[1:]))
    if {"-h", "--help"} & set(argv):
        print(usage())
        raise SystemExit(0)
    sys.argv[1:] = argv = ["--help" if a in HELP_ALL else a for a in argv]  # Hydra's full help
    problem = preflight(argv)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    sys.argv[1:] = pin_as_of(argv)
    from experiment.registry.resolver import forget_warnings

    forget_warnings()  # the checks above resolved the sweep's baseline before Hydra set logging up
    if not INFO_FLAGS & set(sys.argv[1:]):
        load_simulator()
    from experiment.task import task

    task()


if __name__ == "__main__":
    main()
