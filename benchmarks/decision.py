"""Benchmark ``decision``: the operating characteristics of the champion/challenger decision, measured (issue 22).

``python -m experiment.bench decision [--decisions N] [--levels=-0.5,0,0.25,0.5,1.0] [--first 4] [--batch 2]
[--max-replications 16] [--min-gain 0.2] [--workers W] [--smoke --out FILE]``

1. **Challengers with known gains.** A path through the navi3 space, from a worse setting (production with
   ``gamma`` 0.90) to the navi3 oracle (``docs/oracle-navi3.json``), is scanned on the test week with
   calibration seeds; the point of each target gain is interpolated on it.
2. **Independent decisions.** Decision ``i`` of every level uses its own block of ``max_replications`` test-week
   seeds (production and the challenger on the same seed, both demand sources: common random numbers). The same
   blocks serve every level, so production is simulated once per seed. Each block is decided by today's fixed
   rule (``fixed-5``: 5 replications, the 95 % lower bound above 0 for both sources) and by the sequential
   procedure (``experiment.report.sequential``, the report's default settings unless overridden). Only the
   replications a decision looks at are simulated.
3. **The truth.** Each level's true gain is the mean paired gain over the first 5 replications of *every*
   decision (5 x ``--decisions`` seeds per source, 500 by default, fixed before any stopping, so not biased by
   it), with its 95 % interval: the high-replication evaluation the targets are judged against.

The window: the test week itself (7 days, the region's full fleet), so the gains and their spread are those the
default report sees. ``spread_by_window`` measures what a shorter window would offer: a 1-day window's paired
spread is about twice the week's, which eats its cheaper simulations, and a parameter set's gain differs by window.
Results are cached under ``outputs/decision/`` keyed by the simulator's fingerprint (resumes after a stop).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from benchmarks.oracle import (ROOT, Cache, Dim, Evaluator, OracleError, compose, fingerprint, parse_space,
                               point_of, production_point, search_space_params)

PROG = "navitune bench decision"
LEVELS = (-0.5, 0.0, 0.25, 0.5, 1.0)
DEMANDS = ("ml", "stats")
FIXED_REPLICATIONS = 5  # today's rule: report.replications=5, one look
#: the worse end of the path: production with a shorter planning horizon (about -0.5 % held out)
WORSE = {"policy.gamma": 0.90}
CALIBRATION_T = (-0.5, -0.25, 0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
#: seed bases, apart from the report's (test window seed 1001..) and the oracle's (1101.., 1201..)
CALIBRATION_SEED, DECISION_SEED, SPREAD_SEED = 3001, 5001, 4001
SEED_STRIDE = 200  # decision i's block starts at DECISION_SEED + i * SEED_STRIDE (any max_replications reuses the cache)


def _unit(dim: Dim, value: float) -> float:
    if dim.log:
        return (math.log(value) - math.log(dim.lo)) / (math.log(dim.hi) - math.log(dim.lo))
    return (value - dim.lo) / (dim.hi - dim.lo)


def path_point(dims: Sequence[Dim], worse: Mapping[str, float], best: Mapping[str, float], t: float) -> dict[str, float]:
    """The point at ``t`` on the straight line (in the sweeper's unit scales) from ``worse`` (t=0) to ``best``
    (t=1), clipped to the ranges."""
    u = [_unit(d, worse[d.name]) + t * (_unit(d, best[d.name]) - _unit(d, worse[d.name])) for d in dims]
    return point_of(dims, u)


def interpolate(ts: Sequence[float], gains: Sequence[float], target: float) -> float:
    """The first ``t`` where the piecewise-linear gain curve reaches ``target`` (the nearest end when it never
    does)."""
    for (t0, g0), (t1, g1) in zip(zip(ts, gains), zip(ts[1:], gains[1:])):
        if min(g0, g1) <= target <= max(g0, g1) and g0 != g1:
            return t0 + (target - g0) / (g1 - g0) * (t1 - t0)
    return ts[min(range(len(ts)), key=lambda i: abs(gains[i] - target))]


def _pct(prod: Sequence[float], cand: Sequence[float]) -> list[float]:
    from experiment.report.stats import paired_pct_differences

    return paired_pct_differences(prod, cand)


def run_decision(decisions: int, levels: Sequence[float], design: Any, workers: int, cache_dir: Path, smoke: bool,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    from experiment.app import sim_params
    from experiment.report.sequential import PROMOTE, REJECT, UNDECIDED, SequentialDesign
    from experiment.report.stats import mean_interval

    t_start = time.perf_counter()
    oracle_file = ROOT / "docs" / "oracle-navi3.json"
    try:
        best = json.loads(oracle_file.read_text())["params"]
    except (OSError, ValueError, KeyError):
        raise OracleError(f"{PROG}: cannot read {oracle_file}; recompute it with python -m experiment.bench oracle "
                          "search_space=navi3") from None
    window = ["window=smoke"] if smoke else ["window=test_week"]
    cfgs = {d: compose(["search_space=navi3", *window, f"demand={d}"]) for d in DEMANDS}
    bases = {d: sim_params(c) for d, c in cfgs.items()}
    dims, _ = parse_space(search_space_params(cfgs["ml"]))
    prod = production_point(bases["ml"].policy, [d.name for d in dims])
    worse = prod | WORSE
    fp = fingerprint()
    tag = hashlib.sha256(json.dumps([fp, smoke, best]).encode()).hexdigest()[:16]
    cache = Cache(cache_dir / f"decision-{tag}.jsonl")
    ev = Evaluator(cache, bases, workers, log, name="decision")
    n_cal = 4 if smoke else 16
    cal_seeds = [CALIBRATION_SEED + r for r in range(n_cal)]
    try:
        # 1. calibration: the gain along the path, both sources
        points = [path_point(dims, worse, best, t) for t in CALIBRATION_T]
        curve = []
        for d in DEMANDS:
            rows = ev.mean(d, [prod, *points], cal_seeds, f"calibration ({d})")
            curve.append([mean_interval(_pct(rows[0], r)).mean for r in rows[1:]])
        cal_gain = [sum(g) / len(g) for g in zip(*curve)]
        log("decision calibration: " + ", ".join(f"t={t:g}: {g:+.2f} %" for t, g in zip(CALIBRATION_T, cal_gain)))
        level_points = [path_point(dims, worse, best, interpolate(CALIBRATION_T, cal_gain, g)) for g in levels]
        # 2. the decisions, one look at a time, simulating only what an open decision looks at
        looks = design.looks
        first = max(looks[0], FIXED_REPLICATIONS)
        block = [[DECISION_SEED + i * SEED_STRIDE + r for r in range(design.max_replications)]
                 for i in range(decisions)]
        values: dict[tuple[str, int, int], float] = {}  # (demand, level or -1 production, seed) -> objective

        def simulate(n_from: int, n_to: int, open_: Mapping[int, Sequence[int]], stage: str) -> None:
            for d in DEMANDS:
                need_prod = sorted({s for ids in open_.values() for i in ids for s in block[i][n_from:n_to]})
                for seed, v in zip(need_prod, ev.mean(d, [prod], need_prod, f"{stage} production ({d})")[0]):
                    values[(d, -1, seed)] = v
                for k, ids in open_.items():
                    seeds = [s for i in ids for s in block[i][n_from:n_to]]
                    for seed, v in zip(seeds, ev.mean(d, [level_points[k]], seeds, f"{stage} level {levels[k]:+g} "
                                                                                    f"({d})")[0]):
                        values[(d, k, seed)] = v

        def diffs(k: int, i: int, n: int) -> dict[str, list[float]]:
            return {d: _pct([values[(d, -1, s)] for s in block[i][:n]], [values[(d, k, s)] for s in block[i][:n]])
                    for d in DEMANDS}

        open_ = {k: list(range(decisions)) for k in range(len(levels))}
        outcome: dict[tuple[int, int], tuple[str, int]] = {}
        done_to = 0
        for n in looks:
            target = max(n, first) if done_to == 0 else n
            if any(open_.values()) and target > done_to:
                simulate(done_to, target, open_, f"look {n}")
                done_to = target
            for k, ids in open_.items():
                still = []
                for i in ids:
                    look = design.look(diffs(k, i, n))
                    if look.outcome is None:
                        still.append(i)
                    else:
                        outcome[(k, i)] = (look.outcome, n)
                open_[k] = still
            log(f"decision look {n}: open " + ", ".join(f"{levels[k]:+g} %: {len(v)}" for k, v in open_.items()))
        fixed_design = SequentialDesign(FIXED_REPLICATIONS, 1, FIXED_REPLICATIONS, min_gain_pct=-math.inf)
        procedures: dict[str, list[dict[str, Any]]] = {"fixed-5": [], "sequential": []}
        level_rows = []
        for k, g in enumerate(levels):
            fixed_promote = sum(fixed_design.look(diffs(k, i, FIXED_REPLICATIONS)).outcome == PROMOTE
                                for i in range(decisions))
            seq = [outcome[(k, i)] for i in range(decisions)]
            truth = {d: mean_interval([x for i in range(decisions) for x in diffs(k, i, FIXED_REPLICATIONS)[d]])
                     for d in DEMANDS}
            true_gain = sum(iv.mean for iv in truth.values()) / len(truth)
            per = 4  # simulations per replication: production and challenger, two demand sources
            procedures["fixed-5"].append({
                "true_gain_pct": round(true_gain, 4), "promote_rate": fixed_promote / decisions,
                "reject_rate": 1.0 - fixed_promote / decisions, "undecided_rate": 0.0,
                "mean_simulations": float(FIXED_REPLICATIONS * per)})
            procedures["sequential"].append({
                "true_gain_pct": round(true_gain, 4),
                "promote_rate": sum(o == PROMOTE for o, _ in seq) / decisions,
                "reject_rate": sum(o == REJECT for o, _ in seq) / decisions,
                "undecided_rate": sum(o == UNDECIDED for o, _ in seq) / decisions,
                "mean_simulations": round(sum(n for _, n in seq) * per / decisions, 2)})
            level_rows.append({
                "target_gain_pct": g, "params": {p: round(v, 6) for p, v in level_points[k].items()},
                "true_gain_pct": {d: round(iv.mean, 4) for d, iv in truth.items()},
                "true_gain_ci95_pct": {d: [round(iv.lo, 4), round(iv.hi, 4)] for d, iv in truth.items()},
                "spread_sd_pct": {d: round(iv.sd, 4) for d, iv in truth.items()},
                "truth_seeds_per_source": truth["ml"].n})
        spread = spread_by_window(ev, cfgs, prod, best, smoke)
    finally:
        ev.close()
    return {
        "bench": "decision",
        "procedures": [{"name": name, "levels": rows} for name, rows in procedures.items()],
        "design": design.describe(),
        "fixed_rule": "5 paired replications, promote if the 95 % t-interval's lower bound is above 0 for ml and stats",
        "decisions_per_level": decisions,
        "levels": level_rows,
        "calibration": {"t": list(CALIBRATION_T), "gain_pct": [round(g, 4) for g in cal_gain], "seeds": cal_seeds,
                        "worse": worse, "best": best},
        "window": {"name": str(cfgs["ml"].window.name), "days": int(bases["ml"].n_days),
                   "drivers": int(bases["ml"].n_drivers)},
        "spread_by_window": spread,
        "seeds": {"decision_blocks": f"{DECISION_SEED} + i * {SEED_STRIDE} + r, r < max_replications",
                  "calibration": cal_seeds, "spread": f"{SPREAD_SEED}.."},
        "fingerprint": fp,
        **ev.spent(t_start),
        "smoke": smoke,
    }


def spread_by_window(ev: Evaluator, cfgs: Mapping[str, Any], prod: Mapping[str, float], best: Mapping[str, float],
                     smoke: bool) -> list[dict[str, Any]]:
    """The per-replication spread (SD of the paired % gain) of the oracle's parameters over production on test-week
    windows of 1, 2 and 7 days (ml demand), with the CPU seconds per simulation: what a shorter window would cost."""
    from experiment.app import sim_params
    from experiment.config import parse_day
    from experiment.report.stats import mean_interval

    out = []
    seeds = [SPREAD_SEED + r for r in range(3 if smoke else 16)]
    for days in ((1,) if smoke else (1, 2, 7)):
        cfg = copy.deepcopy(cfgs["ml"])
        cfg.window.end = (parse_day("window.start", cfg.window.start) + dt.timedelta(days=days)).isoformat()
        role = f"spread-{days}d"
        ev.bases = {**ev.bases, role: sim_params(cfg)}
        rows = ev.mean(role, [dict(prod), dict(best)], seeds, f"spread ({days} day(s))")
        iv = mean_interval(_pct(rows[0], rows[1]))
        keys = [k for k in ev.used if json.loads(k)[0] == role]
        cpu = sum(ev.cache.values[k][1] for k in keys) / max(1, len(keys))
        out.append({"days": days, "gain_pct": round(iv.mean, 4), "sd_pct": round(iv.sd, 4), "seeds": len(seeds),
                    "cpu_s_per_simulation": round(cpu, 3),
                    "cpu_s_per_unit_information": round(cpu * iv.sd ** 2, 4)})
    return out


def parse(argv: Sequence[str]) -> tuple[int, list[float], Any, int, bool, Path | None, Path]:
    from experiment.report.sequential import SequentialDesign
    from experiment.report.settings import ReportSettings

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # one line, not argparse's usage block
            hint = " (a list starting with a minus: --levels=-0.5,0,1)" if "--levels" in message else ""
            raise OracleError(f"{PROG}: {message}{hint}")

    ap = Parser(prog="python -m experiment.bench decision", add_help=False)
    defaults = ReportSettings()
    ap.add_argument("--decisions", default="100")
    ap.add_argument("--levels", default=",".join(f"{g:g}" for g in LEVELS))
    ap.add_argument("--first", default=str(defaults.replications))
    ap.add_argument("--batch", default=str(defaults.batch))
    ap.add_argument("--max-replications", default=str(defaults.max_replications))
    ap.add_argument("--min-gain", default=str(defaults.min_gain_pct))
    ap.add_argument("--workers", default="2")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--cache-dir", default=str(ROOT / "outputs" / "decision"))
    args, rest = ap.parse_known_args(list(argv))
    if rest:
        raise OracleError(f"{PROG}: unknown argument {rest[0]!r}; allowed: --decisions N, --levels A,B,..., --first N, "
                          "--batch N, --max-replications N, --min-gain PCT, --workers W, --smoke, --out FILE, "
                          "--cache-dir DIR")

    def whole(option: str, raw: str, lo: int, hi: int) -> int:
        from benchmarks.args import whole as checked

        return checked(OracleError, PROG, option, raw, lo, hi)

    decisions = whole("--decisions", args.decisions, 1, 10000)
    try:
        levels = [float(x) for x in args.levels.split(",") if x.strip()]
        min_gain = float(args.min_gain)
    except ValueError:
        raise OracleError(f"{PROG}: invalid --levels {args.levels!r} or --min-gain {args.min_gain!r}; allowed: "
                          "numbers (per cent), the levels comma-separated") from None
    if not levels or not all(math.isfinite(g) and -5.0 <= g <= 5.0 for g in levels):
        raise OracleError(f"{PROG}: invalid --levels {args.levels!r}; allowed: gains in [-5, 5] %, comma-separated")
    if not (math.isfinite(min_gain) and 0.0 <= min_gain <= 100.0):
        raise OracleError(f"{PROG}: invalid --min-gain {args.min_gain!r}; allowed: a number in [0, 100] (per cent)")
    first = whole("--first", args.first, 2, 200)
    batch = whole("--batch", args.batch, 1, 200)
    top = whole("--max-replications", args.max_replications, max(first, FIXED_REPLICATIONS), SEED_STRIDE)
    try:
        design = SequentialDesign(first, batch, top, min_gain)
    except ValueError as err:
        raise OracleError(f"{PROG}: {err}") from None
    workers = whole("--workers", args.workers, 1, 64)
    out = Path(args.out) if args.out else None
    if args.smoke and (out is None or out.resolve().parent == (ROOT / "docs").resolve()):
        raise OracleError(f"{PROG}: --smoke needs --out FILE outside docs/ (a smoke run never goes to docs/)")
    if out is not None and not out.parent.is_dir():
        raise OracleError(f"{PROG}: invalid --out {args.out!r}; allowed: a file in an existing directory")
    return decisions, levels, design, workers, bool(args.smoke), out, Path(args.cache_dir)


def bench_decision(argv: Sequence[str]) -> dict[str, Any]:
    """The bench entry: run, write ``docs/decision.json`` (or ``--out``), return the summary (the last line)."""
    try:
        decisions, levels, design, workers, smoke, out, cache_dir = parse(argv)
        result = run_decision(decisions, levels, design, workers, cache_dir, smoke)
    except OracleError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(2) from None
    path = out or ROOT / "docs" / "decision.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"decision bench written to {path}", file=sys.stderr)
    return {k: result[k] for k in ("bench", "procedures", "decisions_per_level", "simulations", "cpu_s")} \
        | {"path": str(path)}


def markdown_table(result: Mapping[str, Any]) -> str:
    """The operating characteristics as the Markdown table of docs/report.md and docs/performance.md."""
    levels = result["levels"]
    rows = ["| true gain (ml / stats, %) | rule | promote | reject | undecided | mean simulations |",
            "|---|---|---:|---:|---:|---:|"]
    for k, level in enumerate(levels):
        truth = " / ".join(f"{level['true_gain_pct'][d]:+.2f}" for d in DEMANDS)
        for proc in result["procedures"]:
            row = proc["levels"][k]
            rows.append(f"| {truth} | {proc['name']} | {row['promote_rate']:.0%} | {row['reject_rate']:.0%} | "
                        f"{row['undecided_rate']:.0%} | {row['mean_simulations']:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m benchmarks.decision docs/decision.json: the table for the docs
    print(markdown_table(json.loads(Path(sys.argv[1]).read_text())))
