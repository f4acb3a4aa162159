"""``bench rescore``: measure recorded sweeps' candidates again against a (re)computed oracle, without sweeping.

``python -m experiment.bench rescore RESULT --out FILE [--oracle docs/oracle-navi3.json] [--workers 2] [--smoke]``

A ``bench accuracy`` result records each sweep's candidate (``params``) and its captured share on the oracle's
reporting seeds. When the oracle is computed again on more reporting seeds (``bench oracle --reporting-seeds``),
the sweeps need not run again: their candidates are simulated on the new seeds and every share is recomputed
against the new oracle, on the same seeds (common random numbers). So every figure of a file is read against one
oracle, and each share is measured more precisely.

A candidate is rebuilt as production with its recorded values (``benchmarks.oracle.policy_with``). Where the
recorded evaluation seeds are among the new ones, the rebuilt candidate's mean revenue on them must equal the
recorded one: a candidate that cannot be rebuilt exactly is refused in one line (each row says whether it was
checked: ``rebuilt_verified``). A second rescore keeps the first's record of what was before
(``captured_share_before``, ``oracle_before``, ``rescored.before``). The document is replaced atomically. Each
simulation is cached (``outputs/oracle/rescore-*.jsonl``), so a stopped rescore resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

PROG = "navitune bench rescore"
ROOT = Path(__file__).resolve().parents[1]
OPTIONS = "RESULT (a bench accuracy JSON), --out FILE, --oracle FILE, --workers W, --smoke, --cache-dir DIR"
#: the recorded revenue is rounded to 2 decimals: a rebuilt candidate's mean on the same seeds is within this
REVENUE_TOLERANCE = 0.006
DEFAULT_ORACLE = (ROOT / "docs" / "oracle-navi3.json").resolve()


class RescoreError(Exception):
    """Bad input, or a result that cannot be rescored against this oracle: one line, exit code 2."""


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The options; RescoreError (one line naming the option and what it allows) on bad input."""
    from benchmarks.args import whole

    ap = argparse.ArgumentParser(prog="python -m experiment.bench rescore", add_help=False)
    ap.add_argument("result", nargs="?", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--oracle", default=str(DEFAULT_ORACLE))
    ap.add_argument("--workers", default="2")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--cache-dir", default=str(ROOT / "outputs" / "oracle"))
    args, rest = ap.parse_known_args(list(argv))
    if rest:
        raise RescoreError(f"{PROG}: unknown option {rest[0]!r}; allowed: {OPTIONS}")
    if args.result is None:
        raise RescoreError(f"{PROG}: no RESULT given; allowed: {OPTIONS}")
    if args.out is None:
        raise RescoreError(f"{PROG}: no --out FILE given; allowed: a file in an existing directory (RESULT itself "
                           "to rewrite it)")
    args.result, args.oracle, args.out = Path(args.result), Path(args.oracle), Path(args.out)
    if not args.out.parent.is_dir():
        raise RescoreError(f"{PROG}: invalid --out {str(args.out)!r}; allowed: a file in an existing directory")
    args.workers = whole(RescoreError, PROG, "--workers", args.workers, 1, 64)
    args.cache_dir = Path(args.cache_dir)
    return args


def read_document(path: Path, error: type[Exception] = RescoreError,
                  prog: str = PROG) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the document, its results): a committed file of several (``runs``: docs/accuracy-*.json) or one result
    (a bench accuracy's last stdout line); the results are the document's own objects, rescored in place. Anything
    else is ``error`` in one line (``bench tuning-seeds`` reads results through this too)."""
    if not path.is_file():
        raise error(f"{prog}: no bench accuracy result at {path}")
    text = path.read_text().strip()
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            doc = None
    several = isinstance(doc, dict) and isinstance(doc.get("runs"), list) and "configs" not in doc
    results = doc["runs"] if several else [doc]
    if not results or not all(isinstance(r, dict) and isinstance(r.get("configs"), list) for r in results):
        raise error(f"{prog}: {path} is not a bench accuracy result (one JSON object with configs, or runs of them)")
    return doc, results


def check_candidates(results: Sequence[dict[str, Any]], oracle: dict[str, Any]) -> None:
    """Every configuration of the oracle's search space, every candidate with its params inside the oracle's
    ranges: else one line naming the first that is not (before any simulation)."""
    from benchmarks.oracle import parse_space

    dims, _ = parse_space(oracle["space"])
    ranges = {d.name: (d.lo, d.hi) for d in dims}
    for result in results:
        for entry in result["configs"]:
            name = f"{entry.get('name')}@{entry.get('budget')}"
            if entry.get("search_space") != oracle["search_space"]:
                raise RescoreError(f"{PROG}: {name} searched search_space={entry.get('search_space')}; allowed: "
                                   f"configurations of the oracle's, {oracle['search_space']}")
            if not entry.get("runs"):
                raise RescoreError(f"{PROG}: {name} records no sweeps (runs); allowed: bench accuracy results")
            for row in entry["runs"]:
                params = row.get("params")
                if not isinstance(params, dict) or set(params) != set(ranges):
                    raise RescoreError(f"{PROG}: {name} sampler seed {row.get('seed')} records no candidate of "
                                       f"{', '.join(ranges)}; allowed: bench accuracy results (they record params)")
                for key, (lo, hi) in ranges.items():
                    value = params[key]
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                        raise RescoreError(f"{PROG}: {name} sampler seed {row.get('seed')} chose {key}={value!r}, "
                                           f"outside the oracle's range [{lo:g}, {hi:g}]; allowed: results of the "
                                           "oracle's search space (its ranges)")


def shown(path: Path) -> str:
    """A path as the documents record it: relative to the checkout when inside it (no machine's own prefix)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def rescore(args: argparse.Namespace, log: Any = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Simulate every recorded candidate on the oracle's reporting seeds and the tuning seed, check that each is
    rebuilt exactly, recompute its figures, write the document atomically; the summary for the last stdout line."""
    from benchmarks.accuracy import AccuracyError, captured_share, captured_share_se, check_oracle_space, load_oracle
    from benchmarks.oracle import Cache, Evaluator, OracleError, fingerprint, windows

    t_start = time.perf_counter()
    doc, results = read_document(args.result)
    try:
        oracle = load_oracle(args.oracle, args.smoke)
        win = windows(list(oracle.get("settings", {}).get("overrides", [])), args.smoke)
        check_oracle_space(oracle, win, args.oracle, args.smoke)
    except (AccuracyError, OracleError) as err:
        raise RescoreError(str(err).replace("bench accuracy", "bench rescore")) from None
    check_candidates(results, oracle)
    seeds = [int(s) for s in oracle["seeds"]["reporting"]]
    tune_seed = int(win.tune.seed)
    tag = hashlib.sha256(json.dumps([fingerprint(), oracle.get("settings", {}).get("overrides", []), args.smoke])
                         .encode()).hexdigest()[:16]
    ev = Evaluator(Cache(args.cache_dir / f"rescore-{oracle['search_space']}-{tag}.jsonl"),
                   {"tune": win.tune, "test": win.test}, args.workers, log, name="rescore")
    rows = [(result, entry, row) for result in results for entry in result["configs"] for row in entry["runs"]]
    candidates = [dict(row["params"]) for _, _, row in rows]
    log(f"{PROG}: {len(candidates)} candidates of {len(results)} result(s) on the oracle's {len(seeds)} reporting "
        f"seeds and the tuning seed: {len(candidates) * (len(seeds) + 1) + 1} simulations at most (cached ones reused)")
    try:
        held_out = ev.mean("test", candidates, seeds, "reporting seeds")
        tuning = ev.mean("tune", [oracle["params"], *candidates], [tune_seed], "the tuning seed")
    finally:
        ev.close()
    prod, best = oracle["production_per_seed"], oracle["revenue_per_seed"]
    oracle_tune = tuning[0][0]
    before: dict[int, dict[str, Any]] = {}
    unverified = 0
    for (result, entry, row), values, tune in zip(rows, held_out, tuning[1:]):
        old_seeds = [int(s) for s in (result.get("evaluation") or {}).get("seeds", [])]
        verified = bool(old_seeds) and set(old_seeds) <= set(seeds) and row.get("revenue") is not None
        if verified:
            again = statistics.fmean(values[seeds.index(s)] for s in old_seeds)
            if abs(again - float(row["revenue"])) > REVENUE_TOLERANCE:
                raise RescoreError(f"{PROG}: {entry['name']}@{entry['budget']} sampler seed {row.get('seed')}: the "
                                   f"rebuilt candidate earns {again:,.2f} on the recorded seeds, not the recorded "
                                   f"{float(row['revenue']):,.2f}; allowed: candidates that production with their "
                                   "params rebuilds (nothing was written)")
        unverified += not verified
        share_se = captured_share_se(values, prod, best)
        row.setdefault("captured_share_before", row.get("captured_share"))  # the sweep-time share, kept once
        row.update({"captured_share": round(captured_share(values, prod, best), 4),
                    "captured_share_se": None if math.isnan(share_se) else round(share_se, 4),
                    "revenue": round(statistics.fmean(values), 2),
                    "tuning_vs_oracle_pct": round(100.0 * (tune[0] / oracle_tune - 1.0), 3),
                    # whether it earned its recorded revenue on the recorded seeds (False: nothing to compare)
                    "rebuilt_verified": verified})
        before.setdefault(id(entry), {"median": entry.get("captured_share_median"),
                                      "min": entry.get("captured_share_min")})
    if unverified:
        log(f"{PROG}: {unverified} candidate(s) had no recorded revenue on seeds among the new ones: rebuilt from "
            "their params without that check (rebuilt_verified: false)")
    summary = []
    command = " ".join(["python -m experiment.bench rescore", shown(args.result), "--out", shown(args.out)]
                       + ([] if args.oracle.resolve() == DEFAULT_ORACLE else ["--oracle", shown(args.oracle)])
                       + (["--smoke"] if args.smoke else []))
    for result in results:
        first = (result.get("rescored") or {}).get("before") or {  # the sweep-time oracle, kept once
            "oracle_gain_pct": (result.get("oracle") or {}).get("gain_pct"),
            "evaluation_seeds": len((result.get("evaluation") or {}).get("seeds", []))}
        for entry in result["configs"]:
            shares = [r["captured_share"] for r in entry["runs"]]
            entry["captured_share_median"] = round(statistics.median(shares), 4)
            entry["captured_share_min"] = round(min(shares), 4)
            summary.append({"name": entry["name"], "budget": entry["budget"], "repeats": len(shares),
                            "captured_share_median": entry["captured_share_median"],
                            "captured_share_min": entry["captured_share_min"],
                            "before": before.get(id(entry))})
        if "rescored" not in result:  # the oracle the sweeps were measured against, kept once
            result["oracle_before"] = result.get("oracle")
        result["oracle"] = {k: oracle[k] for k in ("params", "revenue", "production_revenue", "gain_pct",
                                                  "gain_ci95_pct")} \
            | {"search_space": oracle["search_space"], "path": shown(args.oracle)}
        result["evaluation"] = {"window": oracle["windows"]["test"], "seeds": seeds}
        result["rescored"] = {"date": time.strftime("%Y-%m-%d"), "before": first, "command": command}
    from experiment.atomic_file import write_text_atomic

    several = isinstance(doc.get("runs"), list) and "configs" not in doc
    try:  # atomically: a stop or a full disk leaves the file as it was (RESULT itself may be the target)
        write_text_atomic(args.out, json.dumps(doc, indent=1 if several else None) + "\n")
    except OSError as err:
        raise RescoreError(f"{PROG}: cannot write {args.out} ({err.strerror or type(err).__name__}); nothing was "
                           "written; fix that and run the same command again") from None
    log(f"{PROG}: written to {args.out}")
    return {"bench": "rescore", "result": str(args.result), "out": str(args.out),
            "oracle": {k: oracle[k] for k in ("params", "gain_pct", "gain_ci95_pct")} | {"reporting_seeds": len(seeds)},
            "configs": summary, "unverified": unverified, **ev.spent(t_start)}


def bench_rescore(argv: Sequence[str]) -> dict[str, Any]:
    """The bench entry: bad input and refusals are one line on stderr, exit code 2."""
    try:
        return rescore(parse(argv))
    except (RescoreError, ValueError) as err:  # ValueError: captured_share's one line (an oracle without gain)
        print(str(err) if isinstance(err, RescoreError) else f"{PROG}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
