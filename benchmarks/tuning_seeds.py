"""``bench tuning-seeds``: is a sweep's shortfall its one tuning seed, or the week it tuned on?

Every trial of a sweep runs the same seed of the tuning week, and ``bench accuracy`` judges the candidate on the
held-out test week. A candidate that captures little held out either fits the noise of that one seed (then it
also loses on the tuning week's *other* seeds, and more seeds per decision help) or fits the tuning week itself
(then it wins on the tuning week's other seeds and loses only on the test week, and more seeds do not help). This
bench simulates each candidate of a ``bench accuracy`` result, the oracle and production on fresh seeds of the
tuning window (common random numbers), computes each candidate's share of the oracle's gain there, and its rank
correlation with the held-out captured share (beside the correlation of the held-out share with the candidate's
gap to the oracle on the sweep's own tuning seed, ``tuning_vs_oracle_pct``).

The fresh seeds are the tuning window's seed + 200 + j: apart from the seeds the oracle was located on (1..6),
the report's selection stage (+100..) and the test week's (1001..).

``--days D`` (a divisor of the tuning window's days) simulates each fresh seed on a window of D days instead, the
j-th starting (j * D) mod those days after the tuning window's start, so the runs tile it: every weekday in turn,
so 7 one-day runs cover the week as one 7-day run does, with 7 independent draws of the week's demand (each seed
draws its own drift of the hot spots from history, ``experiment/sim/demand.py``) instead of one. Whether short
windows rank the candidates as the held-out week does is what the two correlations then say.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

PROG = "bench tuning-seeds"
ROOT = Path(__file__).resolve().parents[1]
SEED_OFFSET = 200
MAX_SEEDS = 256  # 7 one-day runs per week-long one (--days 1)


class TuningSeedsError(Exception):
    """Bad input, said in one line."""


def gain_pct(values: Sequence[float], production: Sequence[float]) -> float:
    """Mean paired per-seed gain over production, in % (the report's paired differences, as the oracle's gain)."""
    from experiment.report.stats import paired_pct_differences

    return statistics.fmean(paired_pct_differences(production, values))


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (None for fewer than 3 pairs or a constant side)."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    return round(float(spearmanr(a, b).statistic), 4)


OPTIONS = "--oracle, --config, --budget, --seeds, --days, --workers, --smoke, --out"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The options; TuningSeedsError (one line naming the option and what it allows) on bad input."""
    from benchmarks.args import whole

    ap = argparse.ArgumentParser(prog=f"python -m experiment.bench {PROG.split()[1]}", add_help=False)
    ap.add_argument("result", nargs="?", default=None)
    ap.add_argument("--oracle", default=str(ROOT / "docs" / "oracle-navi3.json"))
    ap.add_argument("--config", default=None)
    ap.add_argument("--budget", default=None)
    ap.add_argument("--seeds", default="8")
    ap.add_argument("--days", default=None)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=None)
    args, rest = ap.parse_known_args(list(argv))
    if rest:
        raise TuningSeedsError(f"{PROG}: unknown option {rest[0]!r}; allowed: RESULT (a bench accuracy JSON), "
                               f"{OPTIONS}")
    if args.result is None:
        raise TuningSeedsError(f"{PROG}: no RESULT given; allowed: a bench accuracy JSON (its last line, or a "
                               "docs/accuracy-*.json file of several), then " + OPTIONS)
    args.result, args.oracle = Path(args.result), Path(args.oracle)
    args.out = None if args.out is None else Path(args.out)
    args.seeds = whole(TuningSeedsError, PROG, "--seeds", args.seeds, 1, MAX_SEEDS)
    args.workers = whole(TuningSeedsError, PROG, "--workers", args.workers, 1, 64)
    args.days = None if args.days is None else whole(TuningSeedsError, PROG, "--days", args.days, 1, 7)
    args.budget = None if args.budget is None else whole(TuningSeedsError, PROG, "--budget", args.budget, 1, 100000)
    return args


def entry_of(result: dict[str, Any], name: str | None, budget: int | None) -> dict[str, Any]:
    """The result's one entry for that configuration and budget, refused in one line naming what it holds (none,
    or several: a file of several results needs ``--config`` and, where a name has several budgets, ``--budget``).
    ``all``: every entry's candidates as one (of one oracle), each row naming its configuration."""
    held = sorted({f"{e.get('name')}@{e.get('budget')}" for e in result.get("configs", [])})
    if name is None:
        if result.get("_several"):
            raise TuningSeedsError(f"{PROG}: a file of several results needs --config (and --budget); allowed: "
                                   f"{', '.join(held)}")
        name = result.get("default", "default")
    if name == "all":  # every entry's candidates together (one oracle: each run is checked against it)
        pooled = [e for e in result.get("configs", []) if budget is None or e.get("budget") == budget]
        if not pooled:
            raise TuningSeedsError(f"{PROG}: no configuration at budget {budget} in the result; allowed: "
                                   f"{', '.join(held) or 'none (not a bench accuracy result)'}")
        oracles = {json.dumps(e.get("_oracle_params"), sort_keys=True) for e in pooled}
        if len(oracles) > 1:
            raise TuningSeedsError(f"{PROG}: --config all needs entries measured against one oracle; the result holds "
                                   f"{len(oracles)} oracles; allowed: one of {', '.join(held)}")
        runs = [r | {"config": f"{e.get('name')}@{e.get('budget')}"} for e in pooled for r in e.get("runs") or []]
        if not runs or not all("params" in r for r in runs):
            raise TuningSeedsError(f"{PROG}: the pooled runs carry no candidate params (bench accuracy writes them)")
        return {"name": "all", "budget": budget, "_oracle_params": pooled[0].get("_oracle_params"), "runs": runs}
    entries = [e for e in result.get("configs", []) if e.get("name") == name
               and (budget is None or e.get("budget") == budget)]
    if len(entries) != 1:
        what = "no" if not entries else "more than one"
        raise TuningSeedsError(f"{PROG}: {what} configuration {name}" + (f" at budget {budget}" if budget else "")
                               + f" in the result; allowed: {', '.join(held) or 'none (not a bench accuracy result)'}"
                               + (", all" if held else "")
                               + (" (name one with --budget)" if entries else ""))
    if not entries[0].get("runs") or not all("params" in r for r in entries[0]["runs"]):
        raise TuningSeedsError(f"{PROG}: {name}'s runs carry no candidate params (bench accuracy writes them)")
    return entries[0]


def read_result(path: Path) -> dict[str, Any]:
    """A bench accuracy result: its last stdout line, or a file of several under ``runs`` (docs/accuracy-*.json),
    whose configurations are read as one result's. Each configuration keeps the oracle it was measured against
    (``_oracle_params``: its params and gain, so an oracle recomputed at the same point on other seeds differs), so
    a run of another oracle is refused."""
    from benchmarks.rescore import read_document

    doc, results = read_document(path, TuningSeedsError, PROG)
    several = results[0] is not doc

    def measured(r: dict[str, Any]) -> dict[str, Any] | None:
        o = r.get("oracle") or {}
        return None if o.get("params") is None else {"params": o["params"], "gain_pct": o.get("gain_pct")}

    configs = [{**c, "_oracle_params": measured(r)} for r in results for c in r["configs"]]
    return {"default": results[0].get("default", "default"), "configs": configs, "_several": several}


def run(args: argparse.Namespace, log: Any = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    from benchmarks.accuracy import AccuracyError, evaluate, load_oracle
    from benchmarks.oracle import OracleError, policy_with, windows

    result = read_result(args.result)
    entry = entry_of(result, args.config, args.budget)
    try:
        oracle = load_oracle(args.oracle, args.smoke)
        win = windows(list(oracle.get("settings", {}).get("overrides", [])), args.smoke)
    except (AccuracyError, OracleError) as err:
        raise TuningSeedsError(str(err).replace("bench accuracy", PROG)) from None
    measured = entry.get("_oracle_params")
    if measured is not None and measured != {"params": oracle["params"], "gain_pct": oracle["gain_pct"]}:
        raise TuningSeedsError(f"{PROG}: {entry['name']}@{entry.get('budget')} was measured against another oracle "
                               f"than {args.oracle}; allowed: the oracle file it was measured against (--oracle)")
    seeds = [int(win.tune.seed) + SEED_OFFSET + j for j in range(args.seeds)]
    n_days = int(win.tune.n_days)
    days = n_days if args.days is None else args.days
    divisors = [d for d in range(1, n_days + 1) if n_days % d == 0]
    if days not in divisors:  # short runs tile the window exactly: none starts or ends outside it
        raise TuningSeedsError(f"{PROG}: invalid --days {days}; allowed: a divisor of the tuning window's {n_days} "
                               f"days ({', '.join(map(str, divisors))})")
    runs = entry["runs"]
    policies = [win.tune.policy, policy_with(win.tune.policy, oracle["params"]),
                *(policy_with(win.tune.policy, r["params"]) for r in runs)]
    log(f"{PROG}: {len(policies)} settings (production, the oracle, {len(runs)} candidates of {entry['name']}) on "
        f"{len(seeds)} fresh seeds of the tuning window ({days} days each): {len(policies) * len(seeds)} simulations")
    if days == n_days:
        values = evaluate(win.tune, policies, seeds, args.workers)
    else:
        values = short_window_values(oracle, win, policies, seeds, days, args)
    production, best = values[0], values[1]
    oracle_gain = gain_pct(best, production)
    rows = []
    for r, v in zip(runs, values[2:]):
        g = gain_pct(v, production)
        short = [100.0 * (b - c) / p for b, c, p in zip(best, v, production)]  # per seed, % of production
        rows.append({"seed": r.get("seed"), **({"config": r["config"]} if "config" in r else {}),
                     "captured_share": r["captured_share"],
                     "tuning_fresh_gain_pct": round(g, 4),
                     # how much one seed tells: the spread of the shortfall to the oracle from seed to seed
                     "tuning_fresh_sd_vs_oracle_pct": round(statistics.stdev(short), 4) if len(short) > 1 else None,
                     "tuning_fresh_share": round(g / oracle_gain, 4) if oracle_gain > 0 else None,
                     "tuning_vs_oracle_pct": r.get("tuning_vs_oracle_pct"), "params": r["params"]})
    fresh = [x["tuning_fresh_share"] for x in rows]
    return {
        "bench": "tuning-seeds", "result": str(args.result), "oracle": str(args.oracle), "config": entry["name"],
        "budget": entry.get("budget"), "window": win.describe["tuning"], "seeds": seeds, "days": days,
        "oracle_tuning_fresh_gain_pct": round(oracle_gain, 4),
        "spearman_captured_vs_tuning_fresh": None if None in fresh else
        spearman([x["captured_share"] for x in rows], fresh),
        # the same against the gap to the oracle on the sweep's own tuning seed (what the sweep maximised)
        "spearman_captured_vs_own_seed": None if any(x["tuning_vs_oracle_pct"] is None for x in rows) else
        spearman([x["captured_share"] for x in rows], [x["tuning_vs_oracle_pct"] for x in rows]),
        "runs": rows, "simulations": len(policies) * len(seeds),
    }


def short_window_values(oracle: dict[str, Any], win: Any, policies: Sequence[Any], seeds: Sequence[int], days: int,
                        args: argparse.Namespace) -> list[list[float]]:
    """Per policy, its objective on each seed, the j-th seed on the ``days``-day window starting (j * days) mod the
    window's days after its start (``days`` divides them: the runs tile the window, one-day runs of a week take every
    weekday in turn; common random numbers across the policies)."""
    import datetime as dt
    from dataclasses import replace

    from benchmarks.accuracy import evaluate
    from benchmarks.oracle import windows

    start = dt.date.fromisoformat(str(win.describe["tuning"]["start"]))
    overrides = list(oracle.get("settings", {}).get("overrides", []))
    n_days = int(win.tune.n_days)
    offsets = sorted({(j * days) % n_days for j in range(len(seeds))})
    bases = {k: windows([*overrides, f"window.start={start + dt.timedelta(days=k)}",
                         f"window.end={start + dt.timedelta(days=k + days)}"], args.smoke).tune for k in offsets}
    params = [replace(bases[(j * days) % n_days], seed=s) for j, s in enumerate(seeds)]
    out: list[list[float]] = [[0.0] * len(seeds) for _ in policies]
    for k in offsets:  # one evaluate per start day: its seeds, every policy
        js = [j for j in range(len(seeds)) if (j * days) % n_days == k]
        for i, row in enumerate(evaluate(params[js[0]], policies, [seeds[j] for j in js], args.workers)):
            for j, v in zip(js, row):
                out[i][j] = v
    return out


def bench_tuning_seeds(argv: Sequence[str]) -> dict[str, Any]:
    try:
        args = parse(argv)
        out = run(args)
    except TuningSeedsError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(2) from None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from experiment.atomic_file import write_text_atomic

        write_text_atomic(args.out, json.dumps(out, indent=1) + "\n")
    return out
