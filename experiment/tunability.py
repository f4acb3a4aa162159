"""1-D scans of the tuned parameters around the production values: is tuning worth it?

Every tuned parameter must have its best value strictly inside its search range, and the range must
matter (several % of revenue between the best and worst scanned value). ``python -m experiment.tunability``
prints the scans as JSON and, with ``--plot PATH``, draws them (matplotlib, from the ``docs`` extra).

``--scenario drifting --months 1,4,8`` scans each parameter in a mid-month window of each month of the
scenario's year instead (docs/retune.md): where is each month's 1-D optimum, and how far does it move?
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from experiment.config import production_policy
from experiment.sim.defaults import default_region
from experiment.sim.navigation import NavigationParams
from experiment.sim.scenario import Scenario
from experiment.sim.simulate import SimParams, simulate

#: The 1-D scans' points: they span navi3's search ranges (conf/search_space/navi3.yaml) and, for the discount,
#: reach beyond them to show why the range ends where it does.
SCANS: dict[str, tuple[float, ...]] = {
    "gamma": (0.6, 0.8, 0.9, 0.95, 0.98, 0.995),
    "max_wait_min": (1.0, 2.0, 4.0, 8.0, 30.0, 60.0),
    "road_weights.right": (0.0, 1.0, 2.0, 4.0, 6.0, 10.0),
}
NAVI3 = tuple(SCANS)
#: the road weights outside navi3, scanned around production (issue 19: none may be worth more than the
#: talk's tuned three); relative to production's value, so the grid moves with it
ROAD_WEIGHT_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
ROAD_WEIGHTS = ("arterial", "collector", "local", "left", "straight", "uturn")


def road_weight_scans(production: dict[str, float]) -> dict[str, tuple[float, ...]]:
    """Scan points of every road weight outside navi3: production's value times ROAD_WEIGHT_FACTORS."""
    return {f"road_weights.{k}": tuple(round(production[k] * f, 4) for f in ROAD_WEIGHT_FACTORS)
            for k in ROAD_WEIGHTS}

def production_params() -> NavigationParams:
    """The simulator's parameters of conf/policy/production.yaml (experiment.config.production_policy)."""
    p = production_policy()
    return NavigationParams.from_road_weights(float(p["gamma"]), float(p["max_wait_min"]), dict(p["road_weights"]),
                                              compliance=float(p["compliance"]))


PRODUCTION = production_params()


REGION = default_region()  # conf/region/tokyo_central.yaml (experiment.sim.defaults)
ALL_SCANS: dict[str, tuple[float, ...]] = SCANS | road_weight_scans(dict(production_policy()["road_weights"]))


def short_window(n_days: int = 2, seed: int = 1) -> SimParams:
    """The default region over a short window (the full fleet, ``n_days`` operating days)."""
    return SimParams(
        region="tokyo_central", n_drivers=REGION["n_drivers"], requests_per_hour=REGION["requests_per_hour"],
        fleet_mix=REGION["fleet_mix"], start_weekday=0, n_days=n_days, seed=seed, policy=PRODUCTION,
    )


def with_param(base: NavigationParams, name: str, value: float) -> NavigationParams:
    from experiment.sim.navigation import with_setting

    return with_setting(base, name, value)


def _objective(params: SimParams) -> float:
    return simulate(params).metrics["objective"]


def scan(
    names: Sequence[str] = tuple(SCANS), base: SimParams | None = None, workers: int = 2,
    seeds: Sequence[int] | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """Objective at each scan point of each parameter, others at production values (the mean over
    ``seeds``, common random numbers across points; default: the base's seed)."""
    base = base or short_window()
    seeds = list(seeds) if seeds else [base.seed]
    jobs = [(n, v, s) for n in names for v in ALL_SCANS[n] for s in seeds]
    runs = [replace(base, seed=s, policy=with_param(base.policy or PRODUCTION, n, v)) for n, v, s in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        values = list(pool.map(_objective, runs, chunksize=2))
    acc: dict[tuple[str, float], list[float]] = {}
    for (n, v, _), obj in zip(jobs, values):
        acc.setdefault((n, v), []).append(obj)
    return {n: [(v, float(np.mean(acc[(n, v)]))) for v in ALL_SCANS[n]] for n in names}


def production_value(name: str) -> float:
    """Production's value of a scanned parameter."""
    p = production_policy()
    if name.startswith("road_weights."):
        return float(p["road_weights"][name.split(".", 1)[1]])
    return float(p[name])


def gains(scans: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Per parameter: the best scanned value's gain over production's (%), production being a scan point."""
    out = {}
    for name, pts in scans.items():
        prod = production_value(name)
        at_prod = [y for x, y in pts if math.isclose(x, prod, rel_tol=1e-9)]
        ref = at_prod[0] if at_prod else float(np.interp(prod, *zip(*sorted(pts))))
        out[name] = round(100.0 * (max(y for _, y in pts) / ref - 1.0), 2)
    return out


def plot(scans: dict[str, list[tuple[float, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scans)
    cols = min(n, 3 if n <= 3 else 5)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), constrained_layout=True, squeeze=False)
    g = gains(scans)
    lo = min(min(y for _, y in pts) for pts in scans.values())
    hi = max(max(y for _, y in pts) for pts in scans.values())
    for ax, (name, pts) in zip(axes.ravel(), scans.items()):
        xs, ys = zip(*pts)
        ax.plot(xs, ys, "o-", color="C0" if name in NAVI3 else "C1")
        ax.axvline(production_value(name), color="grey", ls="--", label="production")
        if name == "max_wait_min" or (name.startswith("road_weights.") and name not in NAVI3):
            ax.set_xscale("log")
        ax.set_ylim(lo - 0.01 * hi, hi * 1.01)  # one scale: which parameters matter shows at a glance
        ax.set_title(f"{name}: best +{g[name]:.1f} %", fontsize=9)
        ax.set_ylabel("yen per driver-day", fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle("tokyo_central, 2-day window: one parameter at a time, others at production "
                 "(blue: navi3, orange: the other road weights)")
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------------
# the drifting year: one scan per month
# ---------------------------------------------------------------------------------------------------

#: navi3's search ranges (conf/search_space/navi3.yaml) and whether the sweeper searches them in log scale
RANGES: dict[str, tuple[float, float, bool]] = {
    "gamma": (0.85, 0.99, False), "max_wait_min": (1.0, 60.0, True), "road_weights.right": (0.0, 10.0, False),
}
#: finer grids than SCANS, for locating each month's optimum
MONTH_GRIDS: dict[str, tuple[float, ...]] = {
    "gamma": (0.8, 0.85, 0.88, 0.91, 0.93, 0.95, 0.965, 0.98, 0.99),
    "max_wait_min": (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 30.0, 45.0, 60.0),
    "road_weights.right": (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0),
}
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "conf" / "scenario"


def load_scenario(name: str) -> Scenario:
    """A scenario of the ``scenario`` config group by name (conf/scenario/NAME.yaml), outside Hydra."""
    from omegaconf import OmegaConf

    from experiment.config import ConfigError, ScenarioConfig, scenario_from_config

    options = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    if name not in options:
        raise ConfigError(f"navitune: unknown scenario {name!r}; allowed: {', '.join(options)}")
    raw = OmegaConf.load(SCENARIO_DIR / f"{name}.yaml")
    raw.pop("defaults", None)
    return scenario_from_config(OmegaConf.merge(OmegaConf.structured(ScenarioConfig), raw))


def month_start(year: int, month: int) -> dt.date:
    """A typical week of the month: the first Monday on or after the 10th (clear of the New Year lull)."""
    day = dt.date(year, month, 10)
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


def month_window(scenario: Scenario, year: int, month: int, n_days: int, seed: int, **kw: Any) -> SimParams:
    """The default region in the month's typical window, the city as the scenario has it on those days."""
    start = month_start(year, month)
    return SimParams(
        region="tokyo_central", n_drivers=kw.pop("n_drivers", REGION["n_drivers"]),
        requests_per_hour=kw.pop("requests_per_hour", REGION["requests_per_hour"]),
        fleet_mix=kw.pop("fleet_mix", REGION["fleet_mix"]), start_weekday=start.weekday(),
        n_days=n_days, seed=seed, policy=kw.pop("policy", PRODUCTION),
        scenario_days=scenario.days(start, n_days + 1), **kw,
    )


def optimum(grid: Sequence[float], values: Sequence[float], log: bool = False) -> float:
    """The best scanned value, refined by a parabola through it and its neighbours (in the search's scale)."""
    x = np.log(np.asarray(grid, dtype=float)) if log else np.asarray(grid, dtype=float)
    y = np.asarray(values, dtype=float)
    i = int(np.argmax(y))
    best = x[i]
    if 0 < i < len(x) - 1:
        (x0, x1, x2), (y0, y1, y2) = x[i - 1 : i + 2], y[i - 1 : i + 2]
        den = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
        if a < 0:
            best = float(np.clip(-b / (2 * a), x0, x2))
    return float(math.exp(best) if log else best)


def range_share(name: str, a: float, b: float) -> float:
    """|a - b| as a share of the parameter's search range (in log scale where the sweeper searches so)."""
    lo, hi, log = RANGES[name]
    if log:
        return abs(math.log(a) - math.log(b)) / (math.log(hi) - math.log(lo))
    return abs(a - b) / (hi - lo)


def month_scans(
    scenario: Scenario, months: Sequence[int], year: int = 2026, n_days: int = 2, seeds: Sequence[int] = (1, 2, 3),
    names: Sequence[str] = tuple(MONTH_GRIDS), workers: int = 2,
) -> dict[str, Any]:
    """Per month and parameter: the mean objective over ``seeds`` at each grid point (others at production;
    common random numbers across points) and the refined optimum; per parameter, how far it moves."""
    jobs = [(m, n, v, s) for m in months for n in names for v in MONTH_GRIDS[n] for s in seeds]
    runs = [
        replace(month_window(scenario, year, m, n_days, s), policy=with_param(PRODUCTION, n, v)) for m, n, v, s in jobs
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        values = list(pool.map(_objective, runs, chunksize=4))
    acc: dict[tuple[int, str, float], list[float]] = {}
    for (m, n, v, _), obj in zip(jobs, values):
        acc.setdefault((m, n, v), []).append(obj)
    out: dict[str, Any] = {"scenario": scenario.name, "year": year, "n_days": n_days, "seeds": list(seeds), "months": {}}
    for m in months:
        entry = {"window_start": month_start(year, m).isoformat()}
        for n in names:
            ys = [float(np.mean(acc[(m, n, v)])) for v in MONTH_GRIDS[n]]
            entry[n] = {"grid": list(MONTH_GRIDS[n]), "objective": [round(y, 1) for y in ys],
                        "optimum": round(optimum(MONTH_GRIDS[n], ys, RANGES[n][2]), 4)}
        out["months"][str(m)] = entry
    out["moves"] = {}
    for n in names:
        opt = {m: out["months"][str(m)][n]["optimum"] for m in months}
        lo_m, hi_m = min(opt, key=opt.get), max(opt, key=opt.get)
        out["moves"][n] = {"min": [lo_m, opt[lo_m]], "max": [hi_m, opt[hi_m]],
                           "share_of_range": round(range_share(n, opt[lo_m], opt[hi_m]), 3)}
    return out


def plot_drift(result: dict[str, Any], path: str) -> None:
    """Each parameter's monthly optimum along the year, with the production value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["moves"])
    months = sorted(int(m) for m in result["months"])
    prod = {"gamma": PRODUCTION.gamma, "max_wait_min": PRODUCTION.max_wait_min,
            "road_weights.right": PRODUCTION.turn_weights[2]}
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), constrained_layout=True)
    for ax, n in zip(np.atleast_1d(axes), names):
        ys = [result["months"][str(m)][n]["optimum"] for m in months]
        ax.plot(months, ys, "o-", label="1-D optimum")
        ax.axhline(prod[n], color="grey", ls="--", label="production")
        lo, hi, log = RANGES[n]
        ax.set_ylim(lo, hi)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(months)
        ax.set_xlabel("month")
        ax.set_title(f"{n}: moves {100 * result['moves'][n]['share_of_range']:.0f} % of range")
        ax.legend(fontsize=8)
    fig.suptitle(f"scenario {result['scenario']} {result['year']}: each month's 1-D optimum "
                 f"({result['n_days']}-day mid-month windows, {len(result['seeds'])} seeds)")
    fig.savefig(path, dpi=110)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
KPIS = ("occupancy_distance", "trips_per_driver_shift", "mean_fare_yen", "revenue_per_driver_shift_yen", "objective")


def _month_kpis(job: tuple[str, int, int, int]) -> tuple[int, int, dict[str, float]]:
    from experiment.sim.simulate import simulate

    name, year, month, seed = job
    m = simulate(month_window(load_scenario(name), year, month, 7, seed)).metrics
    return month, seed, {k: float(m[k]) for k in KPIS}


def kpi_table(scenario: str, months: Sequence[int], year: int, seeds: Sequence[int], workers: int = 2) -> str:
    """docs/retune.md's "Every month stays realistic": production, the full fleet, each month's typical week
    (7 days from the first Monday on or after the 10th); the mean over ``seeds`` and the range of occupancy."""
    jobs = [(scenario, year, m, s) for m in months for s in seeds]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_month_kpis, jobs))
    rows = ["| month | occupancy (range over seeds) | rides / shift | mean fare | revenue / shift | revenue / driver-day |",
            "|---|---|---|---|---|---|", "| band | 0.40–0.55 | 18–32 | 1,800–3,500 | 45,000–75,000 | |"]
    for m in months:
        got = [k for mm, _, k in results if mm == m]
        mean = {k: sum(g[k] for g in got) / len(got) for k in KPIS}
        occ = [g["occupancy_distance"] for g in got]
        rows.append(f"| {MONTHS[m - 1]} | {mean['occupancy_distance']:.3f} ({min(occ):.3f}–{max(occ):.3f}) | "
                    f"{mean['trips_per_driver_shift']:.1f} | {mean['mean_fare_yen']:,.0f} | "
                    f"{mean['revenue_per_driver_shift_yen']:,.0f} | {mean['objective']:,.0f} |")
    return "\n".join(rows)


def drift_table(result: dict[str, Any]) -> str:
    """docs/retune.md's "Does the optimum move?" table, from ``--scenario ... --json``'s result."""
    names = ("gamma", "max_wait_min", "road_weights.right")
    rows = ["| month | window | " + " | ".join(names) + " |", "|---|---|---|---|---|"]
    for key in sorted(result["months"], key=int):
        month = result["months"][key]
        rows.append(f"| {MONTHS[int(key) - 1]} | {month['window_start']} | "
                    + " | ".join(f"{month[n]['optimum']:.3f}" if n == "gamma" else f"{month[n]['optimum']:.2f}"
                                 for n in names) + " |")
    moves = result.get("moves") or {}
    cells = []
    for n in names:
        mv = moves.get(n) or {}
        share = mv.get("share", mv.get("share_of_range"))
        cells.append(f"**{share:.0%}**" if isinstance(share, (int, float)) else str(mv or "-"))
    rows.append("| **move** (share of the search range) | | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--plot", help="write a PNG of the curves")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--scenario", help="scan each month of this scenario's year (e.g. drifting)")
    ap.add_argument("--months", default="1,2,3,4,5,6,7,8,9,10,11,12", help="comma-separated months (with --scenario)")
    ap.add_argument("--year", type=int, default=2026)
    ap.add_argument("--seeds", type=int, default=3, help="seeds per point (with --scenario)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write the JSON to this file")
    ap.add_argument("--all", action="store_true",
                    help="scan every road weight too (issue 19), and report each parameter's gain over production")
    ap.add_argument("--kpi-table", action="store_true",
                    help="with --scenario: print the monthly KPI table of docs/retune.md (7-day weeks, --seeds seeds)")
    ap.add_argument("--drift-table", metavar="JSON", help="print the optima table of docs/retune.md from this JSON")
    args = ap.parse_args()
    if args.drift_table:
        print(drift_table(json.loads(Path(args.drift_table).read_text())))
        return
    if args.scenario and args.kpi_table:
        months = [int(m) for m in args.months.split(",")]
        print(kpi_table(args.scenario, months, args.year, tuple(range(1, args.seeds + 1)), args.workers))
        return
    if args.scenario:
        from experiment.config import ConfigError

        try:
            scenario = load_scenario(args.scenario)
            months = [int(m) for m in args.months.split(",")]
            if not all(1 <= m <= 12 for m in months):
                raise ValueError
        except ConfigError as err:
            raise SystemExit(str(err)) from None
        except ValueError:
            raise SystemExit(f"navitune: invalid --months {args.months!r}; allowed: comma-separated months 1-12") from None
        result = month_scans(scenario, months, args.year, args.days, tuple(range(1, args.seeds + 1)),
                             workers=args.workers)
        if args.plot:
            plot_drift(result, args.plot)
        text = json.dumps(result)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(text)
        return
    names = tuple(ALL_SCANS) if args.all else tuple(SCANS)
    scans = scan(names, base=short_window(args.days), workers=args.workers,
                 seeds=tuple(range(1, args.seeds + 1)))
    if args.plot:
        plot(scans, args.plot)
    print(json.dumps({"scans": scans, "gain_pct": gains(scans), "n_days": args.days,
                      "seeds": list(range(1, args.seeds + 1))} if args.all else scans))


if __name__ == "__main__":
    main()
