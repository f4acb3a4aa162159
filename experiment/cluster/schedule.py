"""``navitune schedule create (--cron EXPR | --every DURATION) [-m] [overrides]``, and
``navitune schedule list|pause|resume|delete [overrides]``: KFP recurring runs of the driver pipeline.

Each scheduled run is one ``navitune retune`` cycle whose ``--as-of`` is the run's scheduled date (UTC). One
schedule per region and scenario, named ``navitune-retune-<region>-<scenario>`` (in a KFP experiment of the same
name); ``max_concurrency`` 1 (a cycle that runs long delays the next, never overlaps it), no catch-up of missed
times unless ``--catchup``. ``pause``/``resume``/``delete`` find the schedule by the region and scenario of
their overrides (``region=NAME scenario=NAME``) and need ``hydra.launcher.host``. Exit codes: 0 done, 2 bad
input (one line, nothing changed), 1 the KFP API refused or cannot be reached.
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any, Sequence

from experiment.cluster.plan import SCHEDULE_PREFIX, ClusterError, prepare, schedule_name
from experiment.cluster.submit import OneLineParser, add_driver_options, check_output, compiled

COMMANDS = ("create", "list", "pause", "resume", "delete")


def parser() -> OneLineParser:
    p = OneLineParser(prog="navitune schedule", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("--cron", help="create: when, e.g. '0 3 * * MON' (5 fields, UTC) or KFP's 6 (seconds first)")
    p.add_argument("--every", help="create: a fixed interval instead, e.g. 7d, 12h (60 s .. 366 days)")
    p.add_argument("--start", help="create: the first time the schedule may fire (RFC 3339); default now")
    p.add_argument("--catchup", action="store_true", help="create: run every time missed while paused or behind")
    p.add_argument("--json", action="store_true", help="list: one JSON object")
    add_driver_options(p)
    return p


def trigger(args: Any) -> dict[str, Any]:
    """The ``--cron`` / ``--every`` / ``--start`` of ``create`` (exactly one of the first two), checked."""
    import datetime as dt

    from hydra_plugins.navitune_kfp.recurring import (
        CRON_ALLOWED, MIN_PERIOD_S, TriggerError, check_period, normalize_cron, parse_every)

    if (args.cron is None) == (args.every is None):
        raise ClusterError("navitune schedule create: give one of --cron EXPR or --every DURATION; allowed: e.g. "
                           "--cron '0 3 * * MON' or --every 7d")
    start = None if args.start is None else start_time(args.start)
    try:
        if args.cron is not None:
            cron = normalize_cron(args.cron)
            check_period(cron=cron)
            return {"cron": cron, "start_time": start}
        every = parse_every(args.every)
        check_period(every_s=every)
        return {"every_s": every, "start_time": start}
    except TriggerError as err:
        if args.cron is not None:
            raise ClusterError(f"navitune schedule create: invalid --cron {args.cron!r}: {err}; allowed: "
                               f"{CRON_ALLOWED}") from None
        raise ClusterError(f"navitune schedule create: invalid --every {args.every!r}: {err}; allowed: e.g. 7d, "
                           f"12h, 90m ({MIN_PERIOD_S // 3600} h .. 366 days)") from None


#: --start: the span of dates a cycle can have (experiment.windows MIN_AS_OF .. MAX_AS_OF)
START_ALLOWED = "an RFC 3339 time from 2000-01-01T00:00:00Z to 2999-12-31T23:59:59Z, such as 2026-12-07T03:00:00Z"


def start_time(text: str) -> str:
    """``--start`` as KFP's UTC ``YYYY-MM-DDThh:mm:ssZ``, or one line: not a time, not ASCII, or outside the dates
    a cycle can have (a far offset such as ``9999-12-31T23:59:59-14:00`` would overflow the year)."""
    import datetime as dt

    from experiment.windows import MAX_AS_OF, MIN_AS_OF

    bad = ClusterError(f"navitune schedule create: invalid --start {text!r}; allowed: {START_ALLOWED}")
    if not text.isascii():
        raise bad
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        utc = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise bad from None
    if not MIN_AS_OF <= utc.date() <= MAX_AS_OF:
        raise bad
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_champion(plan: Any) -> None:
    """Every cycle starts from the region's champion: without one each would fail in its pod (exit 2, KFP
    retrying). MLflow not reachable from here (a cluster-only address) is a warning, not a refusal."""
    from experiment.registry.resolver import cached_champion
    from experiment.registry.store import RegistryUnavailable
    from hydra_plugins.navitune_shared.redact import redact

    try:
        uri = str(plan.cfg.tracking.uri)
        champion = cached_champion(uri, plan.region)
    except RegistryUnavailable as err:
        print(f"navitune schedule create: warning: cannot check region {plan.region}'s champion "
              f"({redact(str(err)).splitlines()[0]}); each cycle needs one (navitune champion init "
              f"region={plan.region})", file=sys.stderr)
        return
    if champion is None:
        raise ClusterError(f"navitune schedule create: region {plan.region} has no champion in {redact(uri)}; "
                           f"create it with: navitune champion init region={plan.region}")


def create(args: Any, rest: list[str]) -> str:
    from hydra_plugins.navitune_kfp.recurring import Session, describe_trigger, period_s

    when = trigger(args)
    check_output("schedule create", args.output)
    plan = prepare("schedule", rest, args.driver_host)
    check_champion(plan)
    with tempfile.TemporaryDirectory() as tmp:  # default deadline: the period, so no cycle outlives the next
        package = compiled(plan, args, tmp, timeout_s=period_s(when.get("cron"), when.get("every_s")))
        if args.dry_run:
            return (f"navitune schedule: {plan.name} compiled{f' to {package}' if args.output else ''}; nothing "
                    "created (--dry-run)")
        session = Session(plan.settings)
        existing = session.recurring_named(plan.name)
        if existing is not None:
            raise ClusterError(
                f"navitune schedule create: region {plan.region}, scenario {plan.scenario} has a schedule already: "
                f"{plan.name} ({describe_trigger(existing.trigger)}); allowed: one per region and scenario "
                f"(navitune schedule delete region={plan.region} scenario={plan.scenario} first)")
        session.experiment_for(plan.experiment, f"navitune re-tuning cycles of {plan.region} ({plan.scenario})")
        rec = session.create_recurring(plan.name, plan.description, str(package), catchup=args.catchup, **when)
    return (f"navitune schedule: {plan.name} created ({describe_trigger(rec.trigger)}, max_concurrency 1, "
            f"{'catch-up' if args.catchup else 'no catch-up'}): {session.link('recurringrun', rec.recurring_run_id)}")


def connect(rest: list[str]) -> tuple[Any, str]:
    """A KFP session from the overrides' launcher settings, and the schedule name of their region and scenario."""
    from omegaconf import OmegaConf

    from experiment.cluster.plan import check_overrides, compose_sweep, launcher_settings, split_argv, with_launcher
    from experiment.preflight import check_group_choices
    from hydra_plugins.navitune_kfp.recurring import Session
    from hydra_plugins.navitune_kfp.settings import KFPConfigError

    overrides = split_argv("schedule", rest)
    problem = check_group_choices(overrides)
    if problem:
        raise ClusterError(problem)
    check_overrides("schedule", overrides)
    try:
        cfg = compose_sweep(with_launcher(overrides))
    except Exception as err:  # noqa: BLE001 - Hydra's message, first line
        raise ClusterError(f"navitune schedule: {str(err.__cause__ or err).splitlines()[0]}") from None
    try:
        settings = launcher_settings(cfg)
    except KFPConfigError as err:
        raise ClusterError(str(err)) from None
    scenario = OmegaConf.select(cfg, "hydra.runtime.choices.scenario", default=None) or cfg.scenario.name
    return Session(settings), schedule_name(str(cfg.region.name), str(scenario))


def summary(rec: Any, link: str) -> dict[str, Any]:
    from hydra_plugins.navitune_kfp.recurring import describe_trigger

    return {"name": rec.display_name, "id": rec.recurring_run_id, "trigger": describe_trigger(rec.trigger),
            "enabled": str(rec.mode or "").upper() == "ENABLE", "max_concurrency": str(rec.max_concurrency),
            "no_catchup": bool(rec.no_catchup), "created_at": str(rec.created_at or ""), "url": link}


def manage(args: Any, rest: list[str]) -> str:
    session, name = connect(rest)
    if args.command == "list":
        items = [summary(r, session.link("recurringrun", r.recurring_run_id))
                 for r in session.recurring_runs(SCHEDULE_PREFIX)]
        if args.json:
            return json.dumps({"schedules": items})
        if not items:
            return "navitune schedule: no schedules (create one with navitune schedule create --cron EXPR ...)"
        return "\n".join(f"{i['name']}  {'enabled' if i['enabled'] else 'PAUSED'}  {i['trigger']}  "
                         f"max_concurrency {i['max_concurrency']}  {'no catch-up' if i['no_catchup'] else 'catch-up'}"
                         f"  {i['url']}" for i in items)
    rec = session.recurring_named(name)
    if rec is None:
        raise ClusterError(f"navitune schedule {args.command}: no schedule {name} at {session.settings.host}; "
                           "allowed: a region and scenario with a schedule (see navitune schedule list)")
    if args.command == "delete":
        session.delete_recurring(rec.recurring_run_id)
        return f"navitune schedule: {name} deleted (its past runs stay in KFP)"
    session.set_enabled(rec.recurring_run_id, args.command == "resume")
    return f"navitune schedule: {name} {'resumed' if args.command == 'resume' else 'paused'}"


def main(argv: Sequence[str] | None = None) -> int:
    from hydra_plugins.navitune_kfp.errors import KFPApiError, KFPUnavailable

    args, rest = parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        out = create(args, rest) if args.command == "create" else manage(args, rest)
    except ClusterError as err:
        print(str(err), file=sys.stderr)
        return 2
    except (KFPUnavailable, KFPApiError) as err:
        print(f"navitune schedule {args.command}: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0
