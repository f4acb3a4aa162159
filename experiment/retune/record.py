"""``<cycle dir>/retune.json``: the machine-readable record of one re-tuning cycle (a stable contract for other
tools, e.g. ``python -m experiment.bench retune``; keys documented in docs/retune.md), and the one summary line.

Written once the cycle reached a decision, or could not (``unavailable``: MLflow down at the decision;
``incomplete``: the sweep or its report did not finish). A cycle whose record holds a final outcome
(:data:`FINAL`) is done: running it again prints the record and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

RECORD = "retune.json"
SCHEMA = 1
OUTCOMES = ("promoted", "challenger", "already_decided", "unavailable", "skipped", "incomplete")
FINAL = ("promoted", "challenger", "already_decided")  # decided: nothing left to do for this cycle


def path(cycle_dir: Path) -> Path:
    return cycle_dir / RECORD


def load(cycle_dir: Path) -> dict[str, Any] | None:
    """The cycle's record, None when there is none (or it cannot be read: the cycle is then run again)."""
    try:
        data = json.loads(path(cycle_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write(cycle_dir: Path, record: dict[str, Any]) -> Path:
    """Atomically (a reader never sees half a record)."""
    target = path(cycle_dir)
    tmp = target.with_name(f".{RECORD}.{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, target)
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
