"""1-D scans of the tuned parameters around the production values: is tuning worth it?

Every tuned parameter must have its best value strictly inside its search range, and the range must
matter (several % of revenue between the best and worst scanned value). ``python -m experiment.tunability``
prints the scans as JSON and, with ``--plot PATH``, draws them (matplotlib, from the ``docs`` extra).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Sequence

from experiment.sim.navigation import NavigationParams
from experiment.sim.simulate import SimParams, simulate

#: The navi3 search space (conf/search_space/navi3.yaml uses the same ranges) and scan points.
SCANS: dict[str, tuple[float, ...]] = {
    "gamma": (0.6, 0.8, 0.9, 0.95, 0.98, 0.995),
    "max_wait_min": (0.3, 1.0, 2.0, 4.0, 8.0, 30.0),
    "road_weights.right": (0.0, 1.0, 2.0, 4.0, 6.0, 10.0),
}

PRODUCTION = NavigationParams.from_road_weights(
    0.93, 3.0, {"local": 1.3, "right": 2.0, "uturn": 4.0}, compliance=0.7
)


def short_window(n_days: int = 2, seed: int = 1) -> SimParams:
    """The default region over a short window (the full fleet, ``n_days`` operating days)."""
    return SimParams(
        region="tokyo_central", n_drivers=1000, requests_per_hour=1200.0, start_weekday=0,
        n_days=n_days, seed=seed, policy=PRODUCTION,
    )


def with_param(base: NavigationParams, name: str, value: float) -> NavigationParams:
    if name == "road_weights.right":
        turns = list(base.turn_weights)
        turns[2] = value
        return replace(base, turn_weights=tuple(turns))  # type: ignore[arg-type]
    return replace(base, **{name: value})


def _objective(params: SimParams) -> float:
    return simulate(params).metrics["objective"]


def scan(
    names: Sequence[str] = tuple(SCANS), base: SimParams | None = None, workers: int = 2
) -> dict[str, list[tuple[float, float]]]:
    """Objective at each scan point of each parameter, others at production values."""
    base = base or short_window()
    jobs = [(n, v) for n in names for v in SCANS[n]]
    runs = [replace(base, policy=with_param(base.policy or PRODUCTION, n, v)) for n, v in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        values = list(pool.map(_objective, runs))
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for (n, v), obj in zip(jobs, values):
        out[n].append((v, obj))
    return out


def plot(scans: dict[str, list[tuple[float, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scans), figsize=(4.2 * len(scans), 3.4), constrained_layout=True)
    prod = {"gamma": PRODUCTION.gamma, "max_wait_min": PRODUCTION.max_wait_min,
            "road_weights.right": PRODUCTION.turn_weights[2]}
    for ax, (name, pts) in zip(axes, scans.items()):
        xs, ys = zip(*pts)
        ax.plot(xs, ys, "o-")
        ax.axvline(prod[name], color="grey", ls="--", label="production")
        if name == "max_wait_min":
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("revenue per driver-day (yen)")
        ax.legend()
    fig.suptitle("tokyo_central, 2-day window: one parameter at a time, others at production")
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--plot", help="write a PNG of the curves")
    ap.add_argument("--days", type=int, default=2)
    args = ap.parse_args()
    scans = scan(base=short_window(args.days))
    if args.plot:
        plot(scans, args.plot)
    print(json.dumps(scans))


if __name__ == "__main__":
    main()
