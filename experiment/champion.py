"""``navitune champion init|show|history|promote VERSION|rollback|decide SWEEP_DIR`` (docs/retune.md).

The region, the tracking store and the scenario come from Hydra overrides, as for ``navitune`` itself
(``region=ring_city tracking=server tracking.uri=http://host:5000``); ``--region NAME`` is short for
``region=NAME``. ``decide`` uses the sweep's own region and tracking unless overrides are given.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import re
import sys
from typing import Any, Sequence

from omegaconf import DictConfig

from experiment.registry.store import CHALLENGER, CHAMPION, INIT_STUDY, Registry, RegistryError, policy_yaml

from experiment.config import CONF_DIR  # noqa: E402  (conf/ beside the package: one definition)
COMMANDS = ("init", "show", "history", "promote", "rollback", "decide")
TAKES_TARGET = ("promote", "decide")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (its own are a usage block and a message)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise RegistryError(f"navitune champion: {message}; allowed: {' | '.join(COMMANDS)} "
                            "(navitune champion --help)")


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    p = _Parser(prog="navitune champion", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("target", nargs="?", help="promote: the VERSION; decide: the sweep directory")
    p.add_argument("--region", help="the region (same as the override region=NAME)")
    p.add_argument("--promotion", choices=("auto", "manual"), default="auto",
                   help="decide: auto (default: deciding is what was asked) or manual (register the challenger only)")
    p.add_argument("--reason", default="", help="promote/rollback: why (recorded in the version tags)")
    p.add_argument("--json", action="store_true", help="show/history/decide: one JSON object")
    p.add_argument("--from", dest="expected", metavar="VERSION",
                   help="rollback: only if VERSION is still the champion (two rollbacks at once: one moves it)")
    p.add_argument("overrides", nargs="*", help="config overrides such as region=NAME tracking=server")
    argv = list(argv)
    if argv and "=" in argv[0] and not argv[0].startswith("-"):
        raise RegistryError(f"navitune champion: missing command before {argv[0]!r}; allowed: "
                            f"{' | '.join(COMMANDS)} (navitune champion --help)")
    args = p.parse_intermixed_args(argv)  # options, the target and overrides in any order
    overrides = list(args.overrides)
    if args.target is not None and "=" in args.target:  # an override where no target was given
        overrides.insert(0, args.target)
        args.target = None
    if args.target is not None and args.command not in TAKES_TARGET:
        raise RegistryError(f"navitune champion {args.command}: takes no argument {args.target!r}; allowed: "
                            "navitune champion promote VERSION, navitune champion decide SWEEP_DIR, navitune "
                            "champion rollback [--from VERSION]")
    if args.expected is not None and args.command != "rollback":
        raise RegistryError(f"navitune champion {args.command}: --from is for rollback only")
    if args.region:
        overrides.append(f"region={args.region}")
    return args, overrides


def compose(overrides: list[str]) -> DictConfig:
    """The navitune config for these overrides (region, tracking, scenario), validated; one-line errors."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiment.preflight import check_group_choices
    from experiment.registration import register_configs

    problem = check_group_choices(overrides)
    if problem:
        raise RegistryError(problem)
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR)):
            return hydra_compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise RegistryError(f"navitune champion: {str(err.__cause__ or err).splitlines()[0]}") from None


def registry(cfg: DictConfig) -> Registry:
    from experiment.registry.decision import tracking_uri

    uri = tracking_uri(cfg)
    if uri is None:
        raise RegistryError("navitune: invalid config tracking=off for navitune champion: the champion lives in "
                            "MLflow's Model Registry; allowed: tracking=local or tracking=server")
    return Registry.at(uri, str(cfg.region.name), cfg.tracking.get("artifact_location"),
                       float(cfg.tracking.get("timeout_s") or 5))


def init(cfg: DictConfig) -> str:
    """Register conf/policy/production.yaml as the first version and champion (idempotent)."""
    from experiment import scale
    from experiment.registry.decision import scenario_of
    from experiment.registry.store import now, policy_from_yaml
    from experiment.tracking.common import git_state

    reg = registry(cfg)
    champion = reg.champion()
    if champion is not None:
        return f"{reg.name}: champion is already v{champion.number} (nothing changed)"
    source = CONF_DIR / "policy" / "production.yaml"
    policy = policy_from_yaml(source.read_text())
    commit, _ = git_state()
    text = policy_yaml(policy, [f"{reg.name}: conf/policy/production.yaml registered by navitune champion init "
                                f"({now()})"])
    tags = {"study": INIT_STUDY, "decision": "init", "region": reg.region, "scenario": scenario_of(cfg) or "default",
            "reason": "the production parameters (conf/policy/production.yaml)", "git_commit": commit or "unknown"}
    evaluated = scale.of_config(cfg)
    version = reg.register(text, tags, description="conf/policy/production.yaml (navitune champion init)")
    reg.set_eval_scale(evaluated)
    reg.set_champion(version.number, "navitune champion init")
    return (f"{reg.name}: v{version.number} (conf/policy/production.yaml) is the champion, evaluated at "
            f"{scale.describe(evaluated)}: a report at another scale never promotes automatically")


def _summary(v: Any) -> dict[str, Any]:
    tags = dict(v.tags or {})
    return {"version": int(v.version), "aliases": list(getattr(v, "aliases", []) or []),
            "decision": tags.get("decision"), "study": tags.get("study"), "reason": tags.get("reason"),
            "improvement_pct": {k.split(".", 1)[1]: val for k, val in tags.items() if k.startswith("improvement_pct.")},
            "ci95_pct": {k.split(".", 1)[1]: val for k, val in tags.items() if k.startswith("ci95_pct.")},
            "blocked": sorted(k.split(".", 1)[1] for k in tags if k.startswith("blocked.")),
            "rolled_back": tags.get("rolled_back")}


def show(cfg: DictConfig, as_json: bool) -> str:
    reg = registry(cfg)
    champion, challenger = reg.champion(), reg.alias(CHALLENGER)
    if champion is None and not as_json:
        raise RegistryError(f"navitune champion: region {reg.region} has no champion in {reg.settings.where}; "
                            f"create it with: navitune champion init region={reg.region}")
    from experiment import scale

    evaluated = reg.eval_scale()
    data = {"model": reg.name, "uri": f"models:/{reg.name}@{CHAMPION}", "eval_scale": evaluated,
            "champion": None if champion is None else {"version": champion.number, "policy": champion.policy,
                                                        "tags": champion.tags},
            "challenger": None if challenger is None else {"version": challenger.number, "tags": challenger.tags}}
    if as_json:
        return json.dumps(data, default=str)
    assert champion is not None
    lines = [f"{reg.name} @champion = v{champion.number} ({champion.tags.get('decision')}: "
             f"{champion.tags.get('reason')})"]
    lines.append(f"  evaluated at: {scale.describe(evaluated or scale.region_default(reg.region))}"
                 + ("" if evaluated else " (the region's full scale: this registry records none)"))
    lines += [f"  {k}: {v}" for k, v in champion.policy.items()]
    if challenger is not None:
        lines.append(f"@challenger = v{challenger.number}: {challenger.tags.get('reason')}")
    return "\n".join(lines)


def history(cfg: DictConfig, as_json: bool) -> str:
    reg = registry(cfg)
    versions = [_summary(v) for v in reg.versions()]
    if not versions and not as_json:
        raise RegistryError(f"navitune champion: {reg.name} has no versions in {reg.settings.where}; create it "
                            f"with: navitune champion init region={reg.region}")
    order = reg.history()
    if as_json:
        return json.dumps({"model": reg.name, "champion_history": order, "versions": versions}, default=str)
    lines = [f"{reg.name}: champions in order: " + " -> ".join(f"v{n}" for n in order)]
    for v in versions:
        imp = ", ".join(f"{k} {val} % {v['ci95_pct'].get(k, '')}" for k, val in v["improvement_pct"].items())
        lines.append(f"  v{v['version']} {','.join(v['aliases']) or '-'} {v['decision']} ({v['study']}) "
                     f"{imp} {v['reason']}".rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``navitune champion ...``; returns the exit code (2: bad input, 1: MLflow unreachable)."""
    from experiment.registry.store import RegistryUnavailable

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args, overrides = parse(sys.argv[1:] if argv is None else argv)
    except RegistryError as err:
        print(str(err), file=sys.stderr)
        return 2
    try:
        out = _run(args, overrides)
    except RegistryUnavailable as err:
        print(f"navitune champion {args.command}: {err}", file=sys.stderr)
        return 1
    except RegistryError as err:
        print(str(err), file=sys.stderr)
        return 2
    if out:
        print(out)
    return 0


def _run(args: argparse.Namespace, overrides: list[str]) -> str:
    from experiment.config import ConfigError

    if args.command == "decide":
        return _decide(args, overrides)
    cfg = compose(overrides)
    try:
        from experiment.config import validate
        from experiment.service_checks import check_services

        validate(cfg)
        check_services(cfg)
    except ConfigError as err:
        raise RegistryError(str(err)) from None
    if args.command == "init":
        return init(cfg)
    if args.command == "show":
        return show(cfg, args.json)
    if args.command == "history":
        return history(cfg, args.json)
    reg = registry(cfg)
    who = _user()
    if args.command == "promote":
        number = version_number(args.target, reg.region)
        before = reg.champion_number()  # the compare-and-set: another command moving it meanwhile -> one line
        reg.set_champion(number, f"manual promotion by {who}" + (f": {args.reason}" if args.reason else ""),
                         expected=before)
        reg.tag(number, decision="promoted (manual)")
        was = f" (was v{before})" if before is not None else ""
        return f"{reg.name}: v{number} is the champion{was}"
    # the compare-and-set: --from VERSION (what the user saw), else the champion as this command found it
    expected = version_number(args.expected, reg.region, "rollback --from") if args.expected else reg.champion_number()
    old, new = reg.rollback(f"by {who}" + (f": {args.reason}" if args.reason else ""), expected=expected)
    return f"{reg.name}: champion rolled back from v{old} to v{new}"


MAX_VERSION = 10**9  # MLflow's version numbers are 32-bit integers


def version_number(text: str | None, region: str, what: str = "promote") -> int:
    """A VERSION argument: ASCII digits, 1 .. MAX_VERSION (``²`` or ``١`` pass ``str.isdigit``, not this)."""
    if text is None or not re.fullmatch(r"[0-9]{1,10}", text) or not 1 <= int(text) <= MAX_VERSION:
        raise RegistryError(f"navitune champion {what}: invalid VERSION {text!r}; allowed: a version number "
                            f"1..{MAX_VERSION} written in ASCII digits (see navitune champion history region={region})")
    return int(text)


def _decide(args: argparse.Namespace, overrides: list[str]) -> str:
    from experiment.registry.decision import decide, tracking_uri

    if not args.target:
        raise RegistryError("navitune champion decide: missing SWEEP_DIR; allowed: a sweep directory holding "
                            "report.json, e.g. outputs/sweeps/<date>/<time>")
    uri = None
    if any(o.lstrip("+").startswith(("tracking", "paths.")) for o in overrides):
        uri = tracking_uri(compose(overrides))
    quiet = logging.getLogger("navitune.registry")
    level, quiet.level = quiet.level, logging.WARNING  # the decision line is printed once, below
    try:
        decision = decide(args.target, region=args.region, uri=uri, promotion=args.promotion)
    finally:
        quiet.setLevel(level)
    if decision.outcome == "unavailable":
        from experiment.registry.store import RegistryUnavailable

        raise RegistryUnavailable(decision.reason)
    return json.dumps(decision.to_dict()) if args.json else decision.line()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in a container
        return "unknown"
