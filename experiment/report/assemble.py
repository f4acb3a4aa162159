"""The verdict: the four patterns, the paired improvements with 95 % intervals, and the decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from experiment.report._util import _mask, _mean, _select
from experiment.report.sequential import PROMOTE, REJECT, UNDECIDED
from experiment.report.settings import (CANDIDATE, CI_METHOD, DEMANDS, PROMOTION_RULE, SEQUENTIAL_CI_METHOD,
                                       SEQUENTIAL_RULE, SETS, ReportSettings)
from experiment.study import Sweep, candidate_name

KEEP = "keep production"  # the fixed rule's outcome when it does not promote


def assemble(
    sweep: Sweep, settings: ReportSettings, cfgs: dict[tuple[str, str], dict[str, Any]],
    jobs: list[tuple[str, str, int, Any]], metrics: list[dict[str, float]], baseline_source: str,
    looks: list[Any],
) -> dict[str, Any]:
    """The report.json content: four patterns, paired improvements with 95 % intervals (the last look's), the
    decision and the looks that led to it."""
    from experiment.app import tuned_params
    from experiment.report.stats import mean_interval
    from experiment.scale import days, fleet

    values: dict[tuple[str, str], list[dict[str, float]]] = {}
    for (s, d, _r, _p), m in zip(jobs, metrics):
        values.setdefault((s, d), []).append(m)
    patterns = []
    for s in SETS:
        for d in DEMANDS:
            ms = values[(s, d)]
            revenue = [m["revenue_per_driver_day_yen"] for m in ms]
            iv = mean_interval(revenue)
            cfg = cfgs[(s, d)]["cfg"]
            patterns.append({
                "set": s, "policy": str(cfg.policy.name), "demand": d,
                "revenue_per_driver_day_yen": iv.mean, "ci95_yen": [iv.lo, iv.hi], "sd_yen": iv.sd,
                "replications": len(revenue), "seeds": [int(p.seed) for p in cfgs[(s, d)]["sim"]],
                "per_replication_yen": revenue,
                "revenue_per_driver_shift_yen": _mean(m["revenue_per_driver_shift_yen"] for m in ms),
                "occupancy_distance": _mean(m["occupancy_distance"] for m in ms),
                "trips_per_driver_shift": _mean(m["trips_per_driver_shift"] for m in ms),
                "params": tuned_params(cfg),
            })
    last = looks[-1]
    intervals = last.intervals
    outcome, reason = verdict(settings, last)
    test_cfg = cfgs[("production", DEMANDS[0])]["cfg"]
    tuning = _select(sweep.config, "window") or {}
    return {
        "study": sweep.study_name,
        "storage": _mask(sweep.storage),
        "sweep_dir": str(sweep.dir),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "region": str(test_cfg.region.name),
        "windows": {
            "tuning": {k: tuning.get(k) for k in ("name", "start", "end", "seed", "drivers", "max_shift_h")},
            "test": {**{k: test_cfg.window.get(k) for k in ("name", "start", "end", "drivers", "max_shift_h")},
                     "fleet": fleet(test_cfg.region.drivers, test_cfg.window.get("drivers")),
                     "days": days(test_cfg.window),
                     "seeds": [int(test_cfg.window.seed) + r for r in range(last.n)],
                     "matched_to_tuning_scale": settings.match_scale,
                     "held_out": test_cfg.window.name != tuning.get("name")},
        },
        "replications": last.n,
        "common_random_numbers": True,
        "best_params": sweep.best_params,
        "best_value_tuning": sweep.best_value,
        "baseline": {"source": baseline_source, "params": tuned_params(cfgs[("production", DEMANDS[0])]["cfg"])},
        "patterns": patterns,
        "improvement_pct": {d: iv.mean for d, iv in intervals.items()},
        "ci95_pct": {d: [iv.lo, iv.hi] for d, iv in intervals.items()},
        "paired_diff_pct": {d: _paired(values, d) for d in DEMANDS},
        "ci_method": CI_METHOD if settings.rule == "fixed" else SEQUENTIAL_CI_METHOD,
        "promotion_rule": PROMOTION_RULE if settings.rule == "fixed" else SEQUENTIAL_RULE,
        "promote": outcome == PROMOTE,
        "decision": outcome,
        "decision_reason": reason,
        "sequential": {"rule": settings.rule, **settings.design().describe(), "replications_used": last.n,
                       **({"method": CI_METHOD} if settings.rule == "fixed" else {}),
                       "looks": [look.as_dict() for look in looks]},
        "candidate": {"file": CANDIDATE, "name": candidate_name(sweep)},
        "settings": asdict(settings),
    }



def verdict(settings: ReportSettings, last: Any) -> tuple[str, str]:
    """The decision the last look took and why, in words for report.md and the registry."""
    both = " and ".join(DEMANDS)
    at = f"after {last.n} paired replications"
    if settings.rule == "fixed":
        if last.outcome == PROMOTE:
            return PROMOTE, f"the lower bound of the 95 % interval is above 0 for {both} demand"
        failing = [d for d, iv in last.intervals.items() if not iv.lo > 0]
        return KEEP, f"the lower bound of the 95 % interval is not above 0 for {' and '.join(failing)} demand"
    if last.outcome == PROMOTE:
        return PROMOTE, f"shown better for {both} demand: the 95 % repeated interval is above 0 for both, {at}"
    if last.outcome == REJECT:
        short = [d for d, iv in last.intervals.items() if iv.hi < settings.min_gain_pct]
        return REJECT, (f"shown not better by report.min_gain_pct={settings.min_gain_pct:g} % for "
                        f"{' and '.join(short)} demand: the 95 % repeated interval is below it, {at}")
    return UNDECIDED, (f"undecided at report.max_replications={settings.max_replications}: not shown better for "
                       f"{both} demand, nor shown below report.min_gain_pct={settings.min_gain_pct:g} % for either")


def _paired(values: dict[tuple[str, str], list[dict[str, float]]], d: str) -> list[float]:
    from experiment.report.stats import paired_pct_differences

    return paired_pct_differences([m["revenue_per_driver_day_yen"] for m in values[("production", d)]],
                                  [m["revenue_per_driver_day_yen"] for m in values[("tuned", d)]])
