"""The verdict: the four patterns, the paired improvements with 95 % intervals, and the decision."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from experiment.report._util import _mask, _mean, _select
from experiment.report.settings import CANDIDATE, CI_METHOD, DEMANDS, PROMOTION_RULE, SETS, ReportSettings
from experiment.study import Sweep, candidate_name


def assemble(
    sweep: Sweep, settings: ReportSettings, cfgs: dict[tuple[str, str], dict[str, Any]],
    jobs: list[tuple[str, str, int, Any]], metrics: list[dict[str, float]], baseline_source: str,
) -> dict[str, Any]:
    """The report.json content: four patterns, paired improvements with 95 % intervals, the decision."""
    from experiment.app import tuned_params
    from experiment.report.stats import mean_interval, paired_improvement, promote
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
    intervals = {}
    for d in DEMANDS:
        prod = [m["revenue_per_driver_day_yen"] for m in values[("production", d)]]
        tuned = [m["revenue_per_driver_day_yen"] for m in values[("tuned", d)]]
        intervals[d] = paired_improvement(prod, tuned)
    decision = promote(intervals)
    failing = [d for d, iv in intervals.items() if not iv.lo > 0]
    reason = ("the lower bound of the 95 % interval is above 0 for " + " and ".join(DEMANDS) + " demand"
              if decision else "the lower bound of the 95 % interval is not above 0 for "
              + " and ".join(failing) + " demand")
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
                     "seeds": [int(test_cfg.window.seed) + r for r in range(settings.replications)],
                     "matched_to_tuning_scale": settings.match_scale,
                     "held_out": test_cfg.window.name != tuning.get("name")},
        },
        "replications": settings.replications,
        "common_random_numbers": True,
        "best_params": sweep.best_params,
        "best_value_tuning": sweep.best_value,
        "baseline": {"source": baseline_source, "params": tuned_params(cfgs[("production", DEMANDS[0])]["cfg"])},
        "patterns": patterns,
        "improvement_pct": {d: iv.mean for d, iv in intervals.items()},
        "ci95_pct": {d: [iv.lo, iv.hi] for d, iv in intervals.items()},
        "paired_diff_pct": {d: _paired(values, d) for d in DEMANDS},
        "ci_method": CI_METHOD,
        "promotion_rule": PROMOTION_RULE,
        "promote": decision,
        "decision": "promote" if decision else "keep production",
        "decision_reason": reason,
        "candidate": {"file": CANDIDATE, "name": candidate_name(sweep)},
        "settings": asdict(settings),
    }



def _paired(values: dict[tuple[str, str], list[dict[str, float]]], d: str) -> list[float]:
    from experiment.report.stats import paired_pct_differences

    return paired_pct_differences([m["revenue_per_driver_day_yen"] for m in values[("production", d)]],
                                  [m["revenue_per_driver_day_yen"] for m in values[("tuned", d)]])
