"""``python -m experiment.report <sweep dir> [overrides]``: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from experiment.report.build import build_report
from experiment.report.settings import CANDIDATE, DEMANDS, ReportError, ReportSettings


USAGE = """usage: python -m experiment.report <sweep dir> [report.KEY=VALUE ...] [config overrides ...]

Evaluate the sweep's best parameters against production on the held-out test window for ml and stats demand,
with paired replications (common random numbers), and write report.json, report.md, policy_candidate.yaml and
plots into the sweep directory.

report settings: report.rule=sequential (looks until shown better / not better; fixed: one look)
                 report.replications=4 (the first look)  report.batch=1 (added per look)
                 report.max_replications=16 (undecided there)  report.min_gain_pct=0.2 (the reject margin)
                 report.window=auto  report.workers=2
                 (auto: the same cycle's rolling test span after a window=rolling sweep, else test_week)
                 report.match_scale=true (test window as long as the tuning window, same fleet caps)
                 report.plots=true
                 report.selection_top=3 report.selection_seeds=1 (>= 2: the best trials on fresh tuning seeds,
                 the best mean is the candidate; 0: the sweep's best trial)
window=NAME is report.window=NAME; demand is not an override (the report evaluates ml and stats)
config overrides (applied to the test configs), e.g. window.drivers=200 region.requests_per_hour=1000"""



def main(argv: Sequence[str] | None = None) -> int:
    """The command line; bad input is one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][report] %(message)s", datefmt="%H:%M:%S")
    sweep_dir, rest = args[0], args[1:]
    # window=X is the test window's option (report.window); the report itself sets the demand source
    rest = [f"report.window={a.split('=', 1)[1]}" if a.startswith("window=") else a for a in rest]
    try:
        own = [a for a in rest if a.split("=", 1)[0].lstrip("+~") in ("demand", "demand.source")]
        if own:
            raise ReportError(f"navitune.report: {own[0]} is not allowed: the report evaluates both demand sources "
                              "(ml and stats)")
        settings = ReportSettings.from_overrides([a for a in rest if a.startswith("report.")])
        r = build_report(sweep_dir, [a for a in rest if not a.startswith("report.")], settings)
    except ReportError as err:
        print(str(err), file=sys.stderr)
        return 2
    except TypeError as err:  # e.g. report.unknown handled above; a wrong value type lands here
        print(f"navitune.report: {err}", file=sys.stderr)
        return 2
    d = Path(sweep_dir)
    print(f"\n{'parameters':<12}{'demand':<8}{'yen/driver-day':>16}{'95 % CI':>22}")
    for p in r["patterns"]:
        lo, hi = p["ci95_yen"]
        print(f"{p['set']:<12}{p['demand']:<8}{p['revenue_per_driver_day_yen']:>16,.0f}{f'{lo:,.0f} .. {hi:,.0f}':>22}")
    for dem in DEMANDS:
        lo, hi = r["ci95_pct"][dem]
        print(f"tuned vs production, {dem} demand: {r['improvement_pct'][dem]:+.2f} % (95 % CI {lo:+.2f} .. {hi:+.2f})")
    print(f"decision: {r['decision']} ({r['decision_reason']})")
    name = r["candidate"]["name"]
    print(f"report: {d / 'report.md'} and report.json, {len(r['plots'])} plots")
    print(f"candidate: cp {d / CANDIDATE} conf/policy/{name}.yaml && python -m experiment policy={name}")
    return 0
