"""One re-tuning cycle, resumable step by step from what its directory holds:

1. the sweep (rolling windows at as_of, baseline = the champion), run in this process as ``python -m experiment
   -m ...`` would; skipped when its report is already there. The study lives in the journal, so a killed
   cycle's sweep resumes its study (Optuna counts the trials already finished);
2. the champion/challenger report (the end-of-sweep callback writes it; written here when the sweep had
   nothing left to run, e.g. a cycle killed between its last trial and its report);
3. the registry decision (the callback decides; replayed here when it could not, e.g. MLflow down: the
   registry's ``sweep_key`` makes a replay change nothing once a decision exists);
4. ``retune.json``, the Slack message (``+notify=slack``) and one summary line.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

from experiment.retune import record as rec
from experiment.retune.checks import BadInput, Plan, champion_version

log = logging.getLogger("navitune.retune")
LOCK = ".retune.lock"
EXIT_OK, EXIT_NOT_DECIDED, EXIT_INTERRUPTED = 0, 1, 130


class Busy(Exception):
    """Another ``navitune retune`` holds this cycle."""


@contextmanager
def cycle_lock(cycle_dir: Path) -> Iterator[None]:
    """One retune per cycle at a time (a second one would race the first for the same study and decision)."""
    cycle_dir.mkdir(parents=True, exist_ok=True)
    with open(cycle_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"navitune retune: another navitune retune is running the cycle in {cycle_dir}; wait for it "
                       "to end (it holds the lock file .retune.lock)") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_same_cycle(p: Plan) -> None:
    """A cycle directory belongs to one study: another demand source (or a hand-made study name) would mix two
    cycles in one directory."""
    recorded = _json(rec.path(p.cycle_dir))  # even a record no longer valid says whose directory this is
    if recorded is not None and isinstance(recorded.get("study"), str) and recorded["study"] != p.study:
        raise BadInput(f"navitune retune: {p.cycle_dir} holds the cycle of study {recorded['study']}, this command's "
                       f"study is {p.study}; allowed: the same overrides as that cycle (see overrides in "
                       f"{rec.path(p.cycle_dir)}), or another paths.outputs")


# ------------------------------------------------------------------------------------------- steps
def run_sweep(argv: list[str]) -> str | None:
    """The cycle's sweep in this process (``python -m experiment <argv>``); None when it ended normally, else
    why not (Hydra has printed the error). KeyboardInterrupt propagates."""
    from experiment.registry.resolver import forget_warnings

    import experiment.app  # noqa: F401  (compiles the simulator here, before the launcher forks jobs)
    from experiment.task import task

    forget_warnings()
    saved = sys.argv
    sys.argv = [saved[0], *argv]
    try:
        task()
    except SystemExit as err:
        if err.code not in (None, 0):
            return f"the sweep ended with exit code {err.code} (its error is above)"
    finally:
        sys.argv = saved
    return None


def sweep_config(p: Plan) -> Any:
    """The config the report and the decision read: the sweep's saved one (None: they read it themselves), or
    this command's when no job of this directory saved one (a cycle whose study was complete before its
    directory was made: nothing ran)."""
    d = p.sweep_dir
    saved = (d / "multirun.yaml").is_file() or any((j / ".hydra" / "hydra.yaml").is_file()
                                                   for j in d.iterdir() if j.name.isdigit())
    return None if saved else p.config


def ensure_report(p: Plan) -> str | None:
    """The report exists, or is written now; None when it is there, else why not."""
    d = p.sweep_dir
    if (d / "report.json").is_file() and (d / "policy_candidate.yaml").is_file():
        return None
    if not (d / "optimization_results.yaml").is_file():
        return f"the sweep did not finish ({d} holds no optimization_results.yaml)"
    from experiment.report import ReportSettings, build_report

    node = OmegaConf.to_container(OmegaConf.select(p.config, "hydra.callbacks.report"), resolve=True)
    assert isinstance(node, dict)
    log.info("retune: writing the champion/challenger report of %s", d)
    try:
        build_report(d, settings=ReportSettings.from_node(node), config=sweep_config(p))
    except Exception as err:  # noqa: BLE001 - one line, the cycle stays resumable
        from experiment.tracking.common import first_line

        return f"the report could not be written: {first_line(err)}"
    return None


def decide(p: Plan) -> dict[str, Any]:
    """The sweep's decision, as the registry holds it. The registry decides (or replays: a decided sweep is
    found by its ``sweep_key``, a decision a kill left pending is completed); the sweep's own
    ``registry_decision.json`` only names the outcome when the registry confirms it (same version, same decision),
    so a forged or stale file never reaches the cycle's record."""
    from experiment.registry import decide as registry_decide
    from experiment.registry.decision import read_decision_file
    from experiment.registry.store import RegistryError

    d = p.sweep_dir
    recorded = read_decision_file(d)  # read before a replay rewrites it
    quiet = logging.getLogger("navitune.registry")
    level, quiet.level = quiet.level, logging.WARNING  # the cycle's one summary line says what was decided
    try:
        decision = registry_decide(d, region=p.region, uri=p.uri, config=sweep_config(p),
                                   promotion=promotion(p)).to_dict()
    except RegistryError as err:
        return {"outcome": "incomplete", "reason": str(err)}
    finally:
        quiet.setLevel(level)
    if decision["outcome"] == "already_decided":
        confirmed = (recorded is not None and recorded["outcome"] in ("promoted", "challenger")
                     and recorded["version"] == decision["version"] and recorded["outcome"] == decision["reason"])
        if confirmed:  # decided by the sweep's own end hook in this run of the cycle
            return recorded | {"champion_after": decision["champion_after"]}
        decision |= already_decided(p, int(decision["version"]))
    return decision


def promotion(p: Plan) -> str:
    """``registry.promotion`` of the cycle's sweep (``auto`` unless the user gave ``manual``)."""
    value = OmegaConf.select(p.config, "registry.promotion", default=None)
    return str(value) if value in ("auto", "manual") else "auto"


def already_decided(p: Plan, version: int) -> dict[str, Any]:
    """What the registry says of a version decided before (its tags), for the record."""
    from experiment.registry.store import Registry, RegistryUnavailable

    try:
        reg = Registry.at(p.uri, p.region)
        tags = reg.version(version).tags
        champion = reg.champion_number()
    except RegistryUnavailable:
        return {}
    start = tags.get("champion_at_decision") or tags.get("champion_at_start")
    return {"promoted": str(tags.get("decision", "")).startswith("promoted"),  # by this cycle (a later rollback aside)
            "champion_before": int(start) if str(start).isdigit() else None,
            "champion_after": champion,
            "blocked": {k.split(".", 1)[1]: v for k, v in tags.items() if k.startswith("blocked.")},
            "reason": tags.get("reason", "")}


def confirmed_by_registry(p: Plan, record: dict[str, Any]) -> bool:
    """Does the registry hold what a final record says (its version decided as recorded, not left pending)?
    MLflow unreachable: the record stands (it cannot be checked, and nothing will be changed)."""
    from experiment.registry.store import Registry, RegistryError, RegistryUnavailable

    if record.get("version") is None:
        return True
    try:
        tags = Registry.at(p.uri, p.region).version(int(record["version"])).tags
    except RegistryUnavailable:
        return True
    except RegistryError:  # no such version: the record is not the registry's
        return False
    if tags.get("study") != record.get("study"):
        return False
    decided = str(tags.get("decision", ""))
    if decided in ("", "pending") or record.get("promoted") != decided.startswith("promoted"):
        return False
    if record["outcome"] in ("promoted", "challenger") and not decided.startswith(record["outcome"]):
        return False
    start = tags.get("champion_at_decision") or tags.get("champion_at_start")
    if str(start).isdigit() and record.get("champion_before") != int(start):
        return False
    for demand, value in (record.get("improvement_pct") or {}).items():  # the figures the version was tagged with
        tagged = tags.get(f"improvement_pct.{demand}")
        try:
            if tagged is None or abs(float(tagged) - float(value)) > 5e-4:
                return False
        except (TypeError, ValueError):
            return False
    return True


# ------------------------------------------------------------------------------------------- record
def start_record(p: Plan) -> dict[str, Any]:
    """The champion when the cycle's sweep started: its ``registry_start.json``, else its study's record (a
    driver pod retried on an empty disk); {} when neither holds one."""
    from experiment.registry.decision import load_start

    if not p.sweep_dir.is_dir():  # the sweep never started
        return {}
    return load_start(p.sweep_dir, sweep_config(p)) or {}


def base_record(p: Plan) -> dict[str, Any]:
    from experiment.tracking.common import mask

    return {"schema": rec.SCHEMA, "as_of": p.as_of, "region": p.region, "scenario": p.scenario, "demand": p.demand,
            "study": p.study, "cycle_dir": str(p.cycle_dir), "sweep_dir": str(p.sweep_dir),
            "record": str(rec.path(p.cycle_dir)), "registry": mask(p.uri), "overrides": [mask(o) for o in p.overrides]}


def _params(p: Plan, report: dict[str, Any] | None, start: dict[str, Any]
            ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(candidate, champion) parameters, flat (``gamma``, ``road_weights.right``, ...): the candidate option the
    report wrote, and the champion the sweep started from (``start``: :func:`start_record`; else its baseline)."""
    from experiment.registry.store import flat_policy, policy_from_yaml

    candidate = champion = None
    try:
        candidate = flat_policy(policy_from_yaml((p.sweep_dir / "policy_candidate.yaml").read_text()))
    except Exception:  # noqa: BLE001 - no candidate yet
        if report:
            candidate = {k.removeprefix("policy."): v for k, v in (report.get("best_params") or {}).items()}
    if start.get("champion_policy"):
        champion = flat_policy(start["champion_policy"])
    elif report:
        champion = dict((report.get("baseline") or {}).get("params") or {})
    return candidate, champion


def full_record(p: Plan, decision: dict[str, Any], started: str) -> dict[str, Any]:
    report = _json(p.sweep_dir / "report.json")
    imp, ci = rec.improvements(report)
    start = start_record(p)
    candidate, champion = _params(p, report, start)
    outcome = decision.get("outcome", "incomplete")
    return base_record(p) | {
        "outcome": outcome,
        "promoted": bool(decision.get("promoted", outcome == "promoted")),
        "version": decision.get("version"),
        "champion_before": decision.get("champion_before", start.get("champion_version")),
        "champion_after": decision.get("champion_after"),
        "candidate_params": candidate,
        "champion_params": champion,
        "improvement_pct": imp,
        "ci95_pct": ci,
        "promotion_rule_holds": None if report is None else bool(report.get("promote")),
        "report_decision": None if report is None else report.get("decision"),  # promote / reject / undecided
        "replications": None if report is None else report.get("replications"),
        "blocked": decision.get("blocked") or {},
        "reason": decision.get("reason", ""),
        "started": started,
        "finished": rec.now(),
    }


# ------------------------------------------------------------------------------------------- notify
def notify(p: Plan, record: dict[str, Any]) -> None:
    """The decision to Slack when ``+notify=slack`` is set (the webhook URL from the environment; a failed post
    is one warning, never the cycle's failure)."""
    node = OmegaConf.select(p.config, "hydra.callbacks.slack")
    if node is None:
        return
    from experiment.notify.slack import SlackNotifier

    kwargs = OmegaConf.to_container(node, resolve=True)
    assert isinstance(kwargs, dict)
    kwargs.pop("_target_", None)
    notifier = SlackNotifier(**kwargs)
    notifier.post("retune decision", slack_text(record))


def slack_text(record: dict[str, Any]) -> str:
    icon = {"promoted": ":trophy:", "challenger": ":balance_scale:", "already_decided": ":repeat:"}.get(
        record["outcome"], ":warning:")
    lines = [f"{icon} *navitune retune {record['as_of']}* ({record['region']}, {record['scenario']}): "
             + rec.summary_line(record).split(": ", 1)[1].rsplit(" -> ", 1)[0]]
    if record.get("reason"):
        lines.append(f"reason: {record['reason']}")
    lines.append(f"study `{record['study']}`, record `{record['record']}`")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- the cycle
def run(p: Plan) -> int:
    """Run (or resume, or just report) the cycle; returns the exit code and prints one summary line."""
    check_same_cycle(p)
    recorded = rec.load(p.cycle_dir)
    if recorded is not None and recorded.get("outcome") in rec.FINAL:
        if recorded.get("cycle_dir") == str(p.cycle_dir) and confirmed_by_registry(p, recorded):
            print(rec.summary_line(recorded, recorded=True))
            return EXIT_OK
        log.warning("retune: %s does not agree with the registry (or belongs to another directory): the cycle's "
                    "decision is read from the registry again", rec.path(p.cycle_dir))
    p.champion = champion_version(p)  # no champion: one line, exit 2; MLflow down: one line, exit 1
    with cycle_lock(p.cycle_dir):
        recorded = rec.load(p.cycle_dir)
        if (recorded is not None and recorded.get("outcome") in rec.FINAL and recorded.get("cycle_dir") == str(p.cycle_dir)
                and confirmed_by_registry(p, recorded)):  # another retune decided meanwhile
            print(rec.summary_line(recorded, recorded=True))
            return EXIT_OK
        started = (recorded or {}).get("started") or rec.now()
        rec.write(p.cycle_dir, base_record(p) | {"outcome": "incomplete", "started": started,
                                                 "reason": f"running (pid {os.getpid()})"})
        try:
            problem = _sweep_and_report(p)
        except KeyboardInterrupt:
            record = full_record(p, {"outcome": "incomplete", "reason": "interrupted"}, started)
            rec.write(p.cycle_dir, record)
            print(rec.summary_line(record), file=sys.stderr)
            return EXIT_INTERRUPTED
        decision = {"outcome": "incomplete", "reason": problem} if problem else decide(p)
        record = full_record(p, decision, started)
        rec.write(p.cycle_dir, record)
    if record["outcome"] != "incomplete":
        notify(p, record)
    final = record["outcome"] in rec.FINAL
    print(rec.summary_line(record), file=sys.stdout if final else sys.stderr)
    return EXIT_OK if final else EXIT_NOT_DECIDED


def _sweep_and_report(p: Plan) -> str | None:
    d = p.sweep_dir
    if (d / "report.json").is_file() and (d / "policy_candidate.yaml").is_file():
        log.info("retune: the sweep and report of %s are there: deciding", d)
        return None
    log.info("retune: cycle %s of %s/%s (study %s, champion v%s) in %s", p.as_of, p.region, p.scenario, p.study,
             p.champion, d)
    problem = run_sweep(p.sweep_argv)
    return problem or ensure_report(p)
