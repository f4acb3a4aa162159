"""``<cycle dir>/retune.json``: the machine-readable record of one re-tuning cycle (a stable contract for other
tools, e.g. ``python -m experiment.bench retune``; keys documented in docs/retune.md), and the one summary line.

Written once the cycle reached a decision, or could not (``unavailable``: MLflow down at the decision;
``incomplete``: the sweep or its report did not finish). A cycle whose record holds a final outcome
(:data:`FINAL`) is done: running it again prints the record and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("navitune.retune")
RECORD = "retune.json"
SCHEMA = 1
OUTCOMES = ("promoted", "challenger", "already_decided", "unavailable", "skipped", "incomplete")
FINAL = ("promoted", "challenger", "already_decided")  # decided: nothing left to do for this cycle


def path(cycle_dir: Path) -> Path:
    return cycle_dir / RECORD


class RecordError(Exception):
    """The record could not be written (a full disk, a directory in its place): one line, exit 1."""


#: every key a record has, and the types its value may take (the contract of docs/retune.md)
_TYPES: dict[str, tuple[type, ...]] = {
    "schema": (int,), "as_of": (str,), "region": (str,), "scenario": (str,), "study": (str,),
    "cycle_dir": (str,), "sweep_dir": (str,), "record": (str,), "outcome": (str,), "reason": (str,),
    "started": (str,)}
_FINAL_TYPES: dict[str, tuple[type, ...]] = {
    "promoted": (bool,), "version": (int, type(None)), "champion_before": (int, type(None)),
    "champion_after": (int, type(None)), "improvement_pct": (dict,), "ci95_pct": (dict,), "blocked": (dict,)}


def check(data: Any) -> str | None:
    """Why ``data`` is not a valid record (None: it is): the schema's keys and types, a known outcome, a final
    outcome with its version, ``promoted`` agreeing with the outcome."""
    if not isinstance(data, dict):
        return "not a JSON object"
    types = _TYPES | (_FINAL_TYPES if data.get("outcome") in FINAL else {})
    for key, allowed in types.items():
        value = data.get(key)
        if key not in data or not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return f"{key}={value!r} is missing or not of its type"
    if data["schema"] != SCHEMA:
        return f"schema={data['schema']!r}, this navitune reads schema {SCHEMA}"
    if data["outcome"] not in OUTCOMES:
        return f"outcome={data['outcome']!r}; allowed: {', '.join(OUTCOMES)}"
    if data["outcome"] in ("promoted", "challenger") and (data["version"] is None or data["version"] < 1):
        return f"a {data['outcome']} cycle without a version"
    if data["outcome"] in ("promoted", "challenger") and data["promoted"] != (data["outcome"] == "promoted"):
        return f"promoted={data['promoted']} contradicts outcome={data['outcome']}"
    return None


def load(cycle_dir: Path) -> dict[str, Any] | None:
    """The cycle's record, None when there is none, or when it is no valid record (one warning: the cycle is
    then rebuilt from its study, its report and the registry, which hold the truth)."""
    target = path(cycle_dir)
    if not target.exists():
        return None
    try:
        data = json.loads(target.read_text())
    except (OSError, ValueError) as err:
        problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    else:
        problem = check(data)
        if problem is None:
            return data
    log.warning("retune: %s is not a valid record (%s): the cycle is rebuilt from its study and the registry",
                target, problem)
    return None


def write(cycle_dir: Path, record: dict[str, Any]) -> Path:
    """Atomically (a reader never sees half a record); a failed write leaves no temporary file behind and is
    one line (:class:`RecordError`)."""
    from experiment.atomic_file import write_text_atomic

    target = path(cycle_dir)
    try:
        write_text_atomic(target, json.dumps(record, indent=2, default=str) + "\n")
    except OSError as err:
        raise RecordError(f"navitune retune: cannot write {target} ({err.strerror or type(err).__name__}); "
                          "fix that and run the same command again") from None
    return target


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def improvements(report: dict[str, Any] | None) -> tuple[dict[str, float], dict[str, list[float]]]:
    """improvement_pct and ci95_pct per demand source, as the report has them (empty without a report)."""
    if not report:
        return {}, {}
    imp = {d: float(v) for d, v in (report.get("improvement_pct") or {}).items()}
    ci = {d: [float(x) for x in v] for d, v in (report.get("ci95_pct") or {}).items()}
    return imp, ci


def _pct(record: dict[str, Any]) -> str:
    imp, ci = record.get("improvement_pct") or {}, record.get("ci95_pct") or {}
    parts = []
    for d in sorted(imp):
        lo, hi = (ci.get(d) or [float("nan")] * 2)[:2]
        parts.append(f"{d} {imp[d]:+.2f} % [{lo:+.2f}, {hi:+.2f}]")
    return ", ".join(parts)


def summary_line(record: dict[str, Any], recorded: bool = False) -> str:
    """One line: the cycle, its outcome, the versions, the improvement, where the record is."""
    head = f"retune {record['as_of']} {record['region']}/{record['scenario']}:"
    outcome, v = record.get("outcome"), record.get("version")
    before, after = record.get("champion_before"), record.get("champion_after")
    if outcome == "promoted":
        what = f"promoted v{v} to champion (was v{before})"
    elif outcome == "challenger":
        what = f"v{v} registered as challenger, champion stays v{before}"
    elif outcome == "already_decided":
        state = "promoted" if record.get("promoted") else "not promoted"
        what = f"already decided (v{v}, {state}); champion v{after}"
    elif outcome == "unavailable":
        what = "not decided: MLflow unreachable; sweep and report kept, run the same command again to decide"
    elif outcome == "skipped":
        what = f"not decided: {record.get('reason')}"
    else:
        what = f"incomplete: {record.get('reason')}; run the same command again to resume"
    pct = _pct(record)
    if recorded:
        head += " recorded earlier, nothing run:"
    return " ".join(x for x in (head, what, f"({pct})" if pct else "", "->", str(record.get("record"))) if x)
