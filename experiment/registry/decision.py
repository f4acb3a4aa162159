"""The decision at the end of a sweep: the report's best trial against the region's champion.

``decide(sweep_dir)`` reads the sweep's ``report.json`` (the promotion rule's verdict), the champion recorded
when the sweep started (``registry_start.json``, written by :func:`record_start`; when the file is gone, the copy
in the sweep's study, see :mod:`experiment.registry.study_start`) and the registry now, then:

* registers the candidate (``policy_candidate.yaml`` + report.json + report.md) as a new version, tagged with the
  study, sweep directory, improvement and CI per demand source, git commit, decision and reason;
* moves the ``champion`` alias if the rule holds, ``registry.promotion=auto`` and no guard blocks it, else sets
  ``challenger``.

Guards (each blocks auto-promotion with a ``blocked.<code>`` version tag, all named in the one decision line):
the report measured a smaller world than the champion is evaluated in (``scale``), the champion changed while the
sweep ran, the baseline was not the champion, the sweep ended over its failure limit, the sweep ran on another
region or scenario, ``registry.promotion=manual`` (the default of a plain sweep: only ``navitune retune`` and
``navitune champion decide`` decide with ``auto``). A sweep is decided once: a second call finds its version (tag
``sweep_key``) and changes nothing; a version a killed decision left ``pending`` is completed. MLflow
unreachable: nothing changes, one warning; ``navitune champion decide DIR`` replays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiment.tracking.common import mask
from experiment.registry.store import (CHAMPION, Registry, RegistryError, RegistryUnavailable, flat_policy,
                                       same_policy)

log = logging.getLogger("navitune.registry")
from experiment.config import PROMOTIONS  # noqa: E402  (the schema's allowed values)
START_FILE = "registry_start.json"
CANDIDATE = "policy_candidate.yaml"
GUARDS = ("rule", "manual", "scale", "no_champion", "champion_unknown", "champion_changed", "baseline_not_champion",
          "failure_limit", "other_region", "other_scenario", "already_promoted")
PENDING = "pending"  # a version's decision tag while its decision is being carried out (see _carry_out)
DECISIONS = ("promoted", "challenger")


@dataclass
class Decision:
    """What happened to a sweep's candidate. ``outcome``: promoted | challenger | already_decided |
    unavailable (MLflow down: nothing changed) | skipped (tracking=off, or the region has no champion)."""

    outcome: str
    region: str
    sweep_dir: str
    study: str | None = None
    version: int | None = None
    champion_before: int | None = None
    champion_after: int | None = None
    blocked: dict[str, str] = field(default_factory=dict)  # guard code -> reason
    reason: str = ""

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"

    def line(self) -> str:
        where = f"navitune-policy-{self.region}"
        if self.outcome == "promoted":
            return f"registry: {where} v{self.version} is the champion (was v{self.champion_before}): {self.reason}"
        if self.outcome == "challenger":
            return (f"registry: {where} v{self.version} registered as challenger, champion stays "
                    f"v{self.champion_before}: {self.reason}")
        if self.outcome == "already_decided":
            return (f"registry: sweep {self.sweep_dir} was already decided ({where} v{self.version}, {self.reason}; "
                    f"champion v{self.champion_after}): nothing changed")
        return f"registry: nothing promoted: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"promoted": self.promoted}


# ------------------------------------------------------------------------------------------- inputs
def _select(cfg: Any, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:
        return None


def scenario_of(cfg: Any) -> str | None:
    """The config's scenario (the ``scenario`` group, when the config has one)."""
    value = _select(cfg, "hydra.runtime.choices.scenario") or _select(cfg, "scenario.name")
    return None if value is None else str(value)


def tracking_uri(cfg: Any) -> str | None:
    if _select(cfg, "tracking.kind") in (None, "off"):
        return None
    uri = _select(cfg, "tracking.uri")
    return None if uri is None else str(uri)


def sweep_key(study: str | None, sweep_dir: Path) -> str:
    """One key per sweep (directory) and study: what makes a decision idempotent."""
    return hashlib.sha1(f"{study}|{sweep_dir.resolve()}".encode()).hexdigest()[:16]


def record_start(config: DictConfig, sweep_dir: str | Path) -> dict[str, Any]:
    """Write ``registry_start.json``: the champion when the sweep's study started, its region and scenario, and
    keep it in the study too (:mod:`experiment.registry.study_start`: a driver pod retried on an empty disk finds
    it there). A resumed sweep keeps the record its study (or, for a study from before the study's record, its
    directory) started with. Never raises. Nothing for a launcher that only compiles (no trial runs: nothing to
    decide)."""
    from experiment.registry import study_start
    from experiment.tracking.common import compiles_only

    d = Path(sweep_dir)
    if compiles_only(config):
        return {}
    kept = _load_json(d / START_FILE)  # this directory's sweep started before (resumed in place)
    record = kept or champion_now(config)
    in_study = study_start.keep(config, record) if tracking_uri(config) else None  # tracking=off: no decision
    if kept is None and in_study is not None:  # an earlier start of the study (a retried driver pod): its champion
        record = in_study
    if kept is None:
        _write_start(d, record)
    return record


def champion_now(config: Any) -> dict[str, Any]:
    """The start record for the champion now (the same per-process lookup the baseline resolves from)."""
    from experiment.registry.resolver import cached_champion

    region, uri = str(_select(config, "region.name")), tracking_uri(config)
    record: dict[str, Any] = {"region": region, "scenario": scenario_of(config), "champion_version": None,
                              "champion_policy": None, "error": None, "store": None if uri is None else mask(uri)}
    if uri is None:
        record["error"] = "tracking=off"
    else:
        try:
            champion = cached_champion(uri, region)
            if champion is not None:
                record["champion_version"], record["champion_policy"] = champion.number, champion.policy
        except Exception as err:  # noqa: BLE001 - MLflow down: the decision will not auto-promote
            record["error"] = mask(str(err))  # an error may quote the tracking URI
    return record


def _write_start(d: Path, record: dict[str, Any]) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / START_FILE).write_text(json.dumps(record, indent=2) + "\n")
    except OSError as err:  # the study's record (if any) still holds it
        log.warning("registry: %s not written (%s)", d / START_FILE, err)


def load_start(sweep_dir: str | Path, config: Any = None) -> dict[str, Any] | None:
    """The champion when the sweep started: ``registry_start.json``, else the record its study holds (a driver
    pod retried on an empty disk), written back to the file; None when neither has one. ``config``: the sweep's
    (default: its saved one). Never raises."""
    from experiment.registry import study_start

    d = Path(sweep_dir)
    record = _load_json(d / START_FILE)
    if record is not None:
        return record
    try:
        record = study_start.recorded(_config(d, config))
    except Exception:  # noqa: BLE001 - no saved config: not recorded
        return None
    if record is not None:
        log.info("registry: %s was missing (a driver retried on an empty disk?): the study's record is used "
                 "(champion v%s at the start)", d / START_FILE, record.get("champion_version"))
        _write_start(d, record)
    return record


def failures_over_limit(sweep_dir: Path, config: Any) -> str | None:
    """Why the sweep ended over its failure limit (trials failed for good > floor(max_failure_rate *
    n_trials)), None when it did not or the study cannot be read."""
    from experiment.study import load_study, load_sweep

    try:
        study, _ = load_study(load_sweep(sweep_dir, config))
    except Exception:
        return None
    if study is None:
        return None
    from optuna.trial import TrialState

    last: dict[int, Any] = {}
    for t in study.get_trials(deepcopy=False):
        origin = int(t.user_attrs.get("navitune:retry_of", t.number))
        if origin not in last or t.number > last[origin].number:
            last[origin] = t
    failed = sum(1 for t in last.values() if t.state == TrialState.FAIL and not t.user_attrs.get("navitune:stopped"))
    rate = float(_select(config, "hydra.sweeper.max_failure_rate") or 0.0)
    n_trials = int(_select(config, "hydra.sweeper.n_trials") or 0)
    allowed = int(rate * n_trials)
    if failed > allowed:
        return (f"the sweep ended over its failure limit ({failed} trial(s) failed for good, max_failure_rate="
                f"{rate:g} allows {allowed} of n_trials={n_trials})")
    return None


# ------------------------------------------------------------------------------------------- decision
def first_champion_since(start: dict[str, Any] | None, champion: Any, history: list[int]) -> bool:
    """The sweep started when the region had no champion (recorded as such, no error), and the champion now is
    the region's first one, from ``navitune champion init``: the sweep's baseline was production, which is what
    that champion is (the baseline guard checks the values)."""
    return (start is not None and not start.get("error") and start.get("champion_version") is None
            and champion is not None and history in ([], [champion.number])
            and champion.tags.get("decision") == "init")


def guards(report: dict[str, Any], start: dict[str, Any] | None, champion: Any, region: str, config: Any,
           sweep_dir: Path, promotion: str, store: str | None = None, eval_scale: dict[str, Any] | None = None,
           history: list[int] | None = None) -> dict[str, str]:
    """Every reason the candidate is not promoted automatically (empty: promote). ``store``: the registry
    deciding (masked URI); a sweep that started against another one knows nothing of this one's champion.
    ``eval_scale``: the scale the champion is evaluated at (default: the region's full scale)."""
    from experiment import scale

    out: dict[str, str] = {}
    if start is not None and store and start.get("store") not in (None, store):
        start = {**start, "error": f"the sweep started against another registry ({start['store']})",
                 "champion_policy": None}
    if not report.get("promote"):
        out["rule"] = f"the promotion rule does not hold ({report.get('decision_reason', 'see report.md')})"
    if report.get("region") not in (None, region):
        out["other_region"] = f"the sweep ran on region {report.get('region')}, not {region}"
    if champion is None:
        out["no_champion"] = f"region {region} has no champion (navitune champion init region={region})"
    else:
        sweep_scenario, champion_scenario = scenario_of(config), champion.tags.get("scenario")
        if sweep_scenario and champion_scenario and sweep_scenario != champion_scenario:
            out["other_scenario"] = (f"the sweep ran on scenario {sweep_scenario}, the champion v{champion.number} "
                                     f"on {champion_scenario}")
    short = scale.shortfall(scale.of_report(report, config), eval_scale or scale.region_default(region))
    if short:
        out["scale"] = short
    if first_champion_since(start, champion, history or []):
        start = {**(start or {}), "champion_version": champion.number, "champion_policy": champion.policy}
    if start is None or start.get("error") or (champion is not None and start.get("champion_version") is None):
        why = "not recorded" if start is None else (start.get("error") or "none")
        out["champion_unknown"] = f"the champion when the sweep started is unknown ({why})"
    elif champion is not None and start.get("champion_version") != champion.number:
        out["champion_changed"] = (f"the champion changed while the sweep ran (v{start['champion_version']} at "
                                   f"the start, v{champion.number} now)")
    baseline = (report.get("baseline") or {}).get("params") or {}
    reference = (start or {}).get("champion_policy") or (champion.policy if champion is not None else None)
    if reference is not None and not same_policy(baseline, flat_policy(reference)):
        ref = flat_policy(reference)
        keys = sorted(k for k in set(baseline) & set(ref) if not same_policy({k: baseline[k]}, {k: ref[k]}))
        out["baseline_not_champion"] = (f"the sweep's baseline ({(report.get('baseline') or {}).get('source')}) "
                                        f"was not the champion's parameters (differs in {', '.join(keys)})")
    over = failures_over_limit(sweep_dir, config)
    if over:
        out["failure_limit"] = over
    if promotion != "auto" and "rule" not in out:
        out["manual"] = "registry.promotion=manual: promote it with navitune champion promote VERSION"
    return out


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _config(sweep_dir: Path, config: DictConfig | None) -> Any:
    if config is not None:
        return config
    from experiment.study import saved_config

    return saved_config(sweep_dir)


def _version_tags(report: dict[str, Any], key: str, sweep_dir: Path, config: Any, region: str,
                  start: dict[str, Any] | None) -> dict[str, str]:
    from experiment.tracking.common import git_state

    commit, dirty = git_state()
    tags = {"study": str(report.get("study")), "sweep_dir": str(sweep_dir.resolve()), "sweep_key": key,
            "region": region, "scenario": scenario_of(config) or "default",
            "git_commit": f"{commit}{' (dirty)' if dirty else ''}" if commit else "unknown",
            "champion_at_start": str((start or {}).get("champion_version")),
            "baseline_source": str((report.get("baseline") or {}).get("source")),
            "report_decision": str(report.get("decision")), "replications": str(report.get("replications"))}
    for d, value in (report.get("improvement_pct") or {}).items():
        tags[f"improvement_pct.{d}"] = f"{value:+.3f}"
        lo, hi = report["ci95_pct"][d]
        tags[f"ci95_pct.{d}"] = f"[{lo:+.3f}, {hi:+.3f}]"
    return tags


def launch_dir(d: Path, config: Any) -> Path:
    """The directory the sweep was started in: its relative paths (``paths.outputs``, a local store) are relative
    to it. The nearest ancestor ``a`` of ``d`` with ``d`` under ``a / paths.outputs``; else the current one.
    (``hydra.sweep.dir`` is no help: read back, its ``${now:...}`` gives today's time.)"""
    rel = _select(config, "paths.outputs")
    if rel is None or Path(str(rel)).is_absolute():
        return Path.cwd()
    full = d.resolve()
    for a in full.parents:
        outputs = (a / str(rel)).resolve()
        if outputs == full or outputs in full.parents:
            return a
    return Path.cwd()


def sweep_registry(d: Path, config: Any) -> str | None:
    """The sweep's own registry (its ``tracking.uri``), a relative local store taken relative to the directory
    the sweep ran in, not to where this command runs; a local store that does not exist is one line (a decision
    never creates a second, empty registry)."""
    import urllib.parse

    uri = tracking_uri(config)
    if uri is None or not uri.startswith("sqlite:///"):
        return uri
    path = Path(urllib.parse.unquote(uri.removeprefix("sqlite:///")))
    if not path.is_absolute():
        path = launch_dir(d, config) / path
        uri = f"sqlite:///{path}"
    if not path.is_file():
        raise RegistryError(f"navitune champion decide: the sweep's registry {path} does not exist; allowed: run "
                            f"it where the sweep ran, or name the registry with tracking.uri=sqlite:///PATH")
    return uri


def decide(sweep_dir: str | Path, region: str | None = None, uri: str | None = None,
           promotion: str | None = None, config: DictConfig | None = None) -> Decision:
    """Decide (or replay the decision for) the finished sweep in ``sweep_dir``. ``region``, ``uri`` and
    ``promotion`` default to the sweep's own (``region.name``, ``tracking.uri``, ``registry.promotion``).
    Raises RegistryError (one line) for a directory without a report; MLflow down -> outcome ``unavailable``."""
    d = Path(sweep_dir)
    report = _load_json(d / "report.json")
    if report is None or not (d / CANDIDATE).is_file():
        raise RegistryError(f"navitune champion decide: {d} holds no report.json and {CANDIDATE} (write them "
                            f"with: python -m experiment.report {d})")
    config = _config(d, config)
    region = region or str(report.get("region") or _select(config, "region.name"))
    uri = uri or sweep_registry(d, config)
    promotion = promotion or str(_select(config, "registry.promotion") or "auto")
    if promotion not in PROMOTIONS:
        raise RegistryError(f"navitune: invalid config registry.promotion={promotion!r}; allowed: "
                            f"{', '.join(PROMOTIONS)}")
    study = report.get("study")
    if uri is None:
        decision = Decision("skipped", region, str(d), study, reason="tracking=off: no registry")
        log.info(decision.line())
        return decision
    try:
        return _decide(Registry.at(uri, region), d, report, config, promotion)
    except RegistryUnavailable as err:
        decision = Decision("unavailable", region, str(d), study,
                            reason=f"{err}; the sweep and its report are kept: replay with navitune champion "
                                   f"decide {d}")
        log.warning(decision.line())
        return decision


def _decide(reg: Registry, d: Path, report: dict[str, Any], config: Any, promotion: str) -> Decision:
    """Register the candidate and carry out its decision, in an order that a kill at any point leaves
    completable: the version is registered with ``decision=pending`` and its intent, the alias moves (under the
    model's lock, compare-and-set against the champion the decision was made against), and only then the version
    is tagged with the decision and ``registry_decision.json`` written. A replay finds the pending version (its
    ``sweep_key``) and completes it (:func:`_complete`)."""
    with reg.locked():  # two decisions of one sweep at once: the second finds the first's version
        return _decide_locked(reg, d, report, config, promotion)


def _decide_locked(reg: Registry, d: Path, report: dict[str, Any], config: Any, promotion: str) -> Decision:
    from experiment.failpoints import crash_point

    key = sweep_key(report.get("study"), d)
    versions = reg.versions()
    for mv in versions:
        if (mv.tags or {}).get("sweep_key") == key:
            if (mv.tags or {}).get("decision") == PENDING:
                return _complete(reg, mv, d, report)
            return _already(reg, mv, d, report)
    copied = _copied_decision(reg, d, report, versions)
    if copied is not None:  # a decided sweep directory copied elsewhere: the same decision, not a second one
        return _already(reg, copied, d, report)
    champion = reg.champion()
    if champion is None:  # not onboarded: nothing is registered (init registers production as version 1)
        decision = Decision("skipped", reg.region, str(d), report.get("study"),
                            reason=f"region {reg.region} has no champion in {reg.settings.where}: nothing registered; "
                                   f"create it with navitune champion init region={reg.region}, then replay with "
                                   f"navitune champion decide {d}")
        log.info(decision.line())
        return decision
    start = load_start(d, config)
    blocked = guards(report, start, champion, reg.region, config, d, promotion, reg.settings.where,
                     reg.eval_scale(), reg.history())
    promoted = [int(mv.version) for mv in versions if (mv.tags or {}).get("study") == str(report.get("study"))
                and str((mv.tags or {}).get("decision", "")).startswith("promoted")]
    if promoted:  # the same study decided from another sweep directory (a resumed cycle): never twice
        blocked["already_promoted"] = f"study {report.get('study')} was already promoted (v{promoted[-1]})"
    for code, why in blocked.items():
        if code != "rule":
            log.debug("registry: no auto-promotion for %s: %s", d, why)
    tags = _version_tags(report, key, d, config, reg.region, start)
    intent = "promoted" if not blocked else "challenger"
    reason = (str(report.get("decision_reason")) if not blocked else "; ".join(blocked.values()))
    tags |= {"decision": PENDING, "intent": intent, "reason": reason, "champion_at_decision": str(champion.number)}
    tags |= {f"blocked.{code}": why for code, why in blocked.items()}
    text = (d / CANDIDATE).read_text()
    version = reg.register(text, tags, [d / "report.json", d / "report.md"],
                           description=f"candidate of study {report.get('study')} (sweep {d})")
    crash_point("version_registered")
    return _carry_out(reg, version.number, intent, reason, blocked, champion.number, d, report)


def _carry_out(reg: Registry, number: int, intent: str, reason: str, blocked: dict[str, str], expected: int,
               d: Path, report: dict[str, Any], completed: bool = False, before: int | None = None) -> Decision:
    """Move the alias the decision names, then tag the version and write ``registry_decision.json``."""
    from experiment.failpoints import crash_point
    from experiment.registry.store import ChampionChanged

    if intent == "promoted":
        try:
            reg.set_champion(number, f"auto-promotion after sweep {d}: {reason}", expected=expected)
        except ChampionChanged:
            now_number = reg.champion_number()
            why = (f"the champion changed while the decision was carried out (v{expected} when decided, "
                   f"v{now_number} now)")
            intent, reason, blocked = "challenger", why, {**blocked, "champion_changed": why}
            reg.tag(number, **{"blocked.champion_changed": why})
    if intent == "challenger":
        reg.set_challenger(number)
    crash_point("alias_moved")
    reg.tag(number, decision=intent, reason=reason)
    crash_point("decision_tagged")
    after = reg.champion_number()
    before = expected if before is None else before
    decision = Decision(intent, reg.region, str(d), report.get("study"), number, before, after, blocked,
                        reason + (" (an interrupted decision, completed now)" if completed else ""))
    log.info(decision.line())
    write_decision_file(d, decision)
    crash_point("decision_file_written")
    return decision


def _complete(reg: Registry, mv: Any, d: Path, report: dict[str, Any]) -> Decision:
    """A version left ``pending`` by a decision that was killed: carry its intent out now (the alias may already
    have moved: the champion is then this version and only the history and tags are completed)."""
    tags = dict(mv.tags or {})
    number, intent = int(mv.version), tags.get("intent", "challenger")
    blocked = {k.split(".", 1)[1]: v for k, v in tags.items() if k.startswith("blocked.")}
    expected = int(tags["champion_at_decision"]) if str(tags.get("champion_at_decision", "")).isdigit() else None
    before = expected
    if intent == "promoted" and tags.get("rolled_back"):  # its alias move was undone by hand: never redo it
        why = f"rolled back before its decision was completed ({tags['rolled_back']})"
        intent, blocked = "challenger", {**blocked, "rolled_back": why}
        reg.tag(number, **{"blocked.rolled_back": why})
        tags["reason"] = why
    elif intent == "promoted" and reg.champion_number() == number:
        expected = number  # the alias moved before the kill: complete the history and the tags
    log.info("registry: v%s of %s was left pending by an interrupted decision: completing it (%s)", number,
             reg.name, intent)
    return _carry_out(reg, number, intent, tags.get("reason", ""), blocked, expected if expected is not None else -1,
                      d, report, completed=True, before=before)


def _already(reg: Registry, mv: Any, d: Path, report: dict[str, Any]) -> Decision:
    """A sweep decided before: what the registry says of it now (never a record's word over the registry's)."""
    tags = dict(mv.tags or {})
    start = tags.get("champion_at_decision") or tags.get("champion_at_start")
    before = int(start) if str(start).isdigit() else None
    blocked = {k.split(".", 1)[1]: v for k, v in tags.items() if k.startswith("blocked.")}
    decision = Decision("already_decided", reg.region, str(d), report.get("study"), int(mv.version), before,
                        reg.champion_number(), blocked, reason=str(tags.get("decision")))
    log.info(decision.line())
    recorded = read_decision_file(d)
    if tags.get("decision") in DECISIONS and (recorded is None or recorded["version"] != int(mv.version)
                                              or recorded["outcome"] != tags["decision"]):
        # killed after the version's tag, before its record: the record is written back from the registry
        write_decision_file(d, Decision(str(tags["decision"]), reg.region, str(d), report.get("study"),
                                        int(mv.version), before, decision.champion_after, blocked,
                                        str(tags.get("reason", ""))))
    return decision


def _copied_decision(reg: Registry, d: Path, report: dict[str, Any], versions: list[Any]) -> Any | None:
    """The version a ``registry_decision.json`` in ``d`` names, when the registry confirms it: that version
    exists and holds this sweep's study. A record the registry does not confirm is ignored (never trusted)."""
    record = read_decision_file(d)
    if record is None or record.get("version") is None:
        return None
    for mv in versions:
        if int(mv.version) == record["version"] and (mv.tags or {}).get("study") == str(report.get("study")):
            return mv
    return None


# ------------------------------------------------------------------------------------------- the record
DECISION_FILE = "registry_decision.json"
_DECISION_TYPES: dict[str, tuple[type, ...]] = {
    "outcome": (str,), "region": (str,), "sweep_dir": (str,), "study": (str, type(None)),
    "version": (int, type(None)), "champion_before": (int, type(None)), "champion_after": (int, type(None)),
    "blocked": (dict,), "reason": (str,), "promoted": (bool,)}


class BadRecord(ValueError):
    """A record file that does not hold what its schema says (one line: which file, which key)."""


def check_decision_record(data: Any, where: str = DECISION_FILE) -> dict[str, Any]:
    """``registry_decision.json`` against its schema: every key of :class:`Decision`, of its type, a known
    outcome and ``promoted`` agreeing with it; :class:`BadRecord` otherwise."""
    if not isinstance(data, dict):
        raise BadRecord(f"{where} is not a JSON object")
    for key, types in _DECISION_TYPES.items():
        if key not in data:
            raise BadRecord(f"{where} has no {key}")
        value = data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise BadRecord(f"{where}: {key}={value!r} is not of the record's type")
    if data["outcome"] not in ("promoted", "challenger", "already_decided", "skipped", "unavailable"):
        raise BadRecord(f"{where}: outcome={data['outcome']!r} is no decision outcome")
    if data["promoted"] != (data["outcome"] == "promoted"):
        raise BadRecord(f"{where}: promoted={data['promoted']} contradicts outcome={data['outcome']}")
    if data["outcome"] in DECISIONS and (data["version"] is None or data["version"] < 1):
        raise BadRecord(f"{where}: a {data['outcome']} decision without a version")
    return data


def read_decision_file(d: Path) -> dict[str, Any] | None:
    """The sweep's ``registry_decision.json`` if it is a valid record, else None (a bad one is logged once)."""
    path = d / DECISION_FILE
    if not path.exists():
        return None
    try:
        return check_decision_record(json.loads(path.read_text()), str(path))
    except (OSError, ValueError) as err:  # BadRecord, JSON errors, a directory in its place
        log.warning("registry: %s is not a valid decision record (%s): the registry decides", path,
                    str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None


def write_decision_file(d: Path, decision: Decision) -> None:
    """Atomically; a full disk costs one warning (the registry holds the decision; a replay rewrites it)."""
    from experiment.atomic_file import write_text_atomic

    path = d / DECISION_FILE
    try:
        write_text_atomic(path, json.dumps(decision.to_dict(), indent=2) + "\n")
    except OSError as err:
        log.warning("registry: %s not written (%s); the registry holds the decision", path, err)


def decide_after_sweep(sweep_dir: str | Path, config: DictConfig) -> Decision | None:
    """The end-of-sweep hook (called by the report callback after report.json is written): never raises."""
    try:
        return decide(sweep_dir, config=config)
    except Exception as err:  # noqa: BLE001 - the sweep and its report are complete whatever happens here
        from experiment.tracking.common import first_line

        log.warning("registry: nothing promoted (%s); the sweep and its report are kept: replay with navitune "
                    "champion decide %s", first_line(err), sweep_dir)
        return None


__all__ = ["Decision", "PROMOTIONS", "decide", "decide_after_sweep", "load_start", "record_start", "CHAMPION"]
