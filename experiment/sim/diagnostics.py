"""Measurements of the simulator itself (issue 19): how smooth the objective is under common random numbers,
and what vacant taxis do when they follow the navigation (U-turns, repeated corners, crowding).

``python -m experiment.sim.diagnostics smoothness`` perturbs a parameter of the production navigation in
its 7th significant digit, runs the same seed, and reports the SD (and the largest) relative change of
revenue per driver-day; ``python -m experiment.sim.diagnostics behaviour`` runs the NumPy engine with a
move log and reports U-turns per vacant driver-hour, repeated visits to the same corner and the crowding
of the hot corners. Both print JSON. Pure NumPy: the production parameters are passed in by the caller
(the CLI reads ``conf/policy/production.yaml`` without Hydra).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .defaults import default_region
from .navigation import NavigationParams, setting, with_setting
from .network import UTURN
from .simulate import SimParams, build_engine, simulate

#: the held-out test week of conf/window/test_week.yaml (Monday 2026-06-22, seed 1001), default region
def _test_week() -> dict:
    return dict(region="tokyo_central", **default_region(), start_weekday=0, n_days=7, seed=1001)


def value_of(policy: NavigationParams, name: str) -> float:
    """A parameter by its short name: gamma, max_wait_min, a turn type or a road class."""
    return setting(policy, name)


def with_value(policy: NavigationParams, name: str, value: float) -> NavigationParams:
    """``policy`` with parameter ``name`` (as :func:`value_of`) set to ``value``."""
    return with_setting(policy, name, value)


def perturbed(policy: NavigationParams, name: str, rel: float) -> NavigationParams:
    """``policy`` with parameter ``name`` times ``1 + rel``."""
    return with_value(policy, name, value_of(policy, name) * (1.0 + rel))


def smoothness(policy: NavigationParams, names: Sequence[str] = ("gamma", "max_wait_min", "right"),
               n: int = 8, rel: float = 1e-6, base: SimParams | None = None,
               seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Revenue per driver-day with each parameter changed by ``k * rel`` (k = 1..n, relative: 1e-6 changes
    the 7th significant digit) against the unchanged run on the same seed (common random numbers), for each
    of ``seeds``: the root-mean-square change (SD around 0, %), the largest |change| and the share of
    perturbed runs that did not change at all."""
    base = base or SimParams(**_test_week(), policy=policy)
    seeds = list(seeds) if seeds else [base.seed]
    changes: dict[str, list[float]] = {name: [] for name in names}
    refs = []
    for seed in seeds:
        run = replace(base, seed=seed)
        ref = simulate(replace(run, policy=policy)).metrics["objective"]
        refs.append(ref)
        for name in names:
            for k in range(1, n + 1):
                obj = simulate(replace(run, policy=perturbed(policy, name, k * rel))).metrics["objective"]
                changes[name].append(100.0 * (obj / ref - 1.0))
    allc = np.concatenate([np.asarray(v) for v in changes.values()])
    return {
        "seeds": seeds, "n_days": base.n_days, "rel_step": rel, "runs_per_param_and_seed": n,
        "objective": [round(r, 1) for r in refs],
        "sd_pct": round(float(np.sqrt(np.mean(allc**2))), 4), "max_abs_pct": round(float(np.abs(allc).max()), 4),
        "unchanged_share": round(float(np.mean(allc == 0.0)), 3),
        "changes_pct": {k: [round(x, 4) for x in v] for k, v in changes.items()},
    }


def behaviour(p: SimParams, hot_top: int = 20) -> dict[str, Any]:
    """What the vacant taxis do (NumPy engine with a move log; stationary city only):

    * ``uturns_per_vacant_hour``: U-turn moves per hour of vacant cruising;
    * ``uturn_share``: U-turns among all moves;
    * ``return_within_3``: share of moves that reach a corner the same driver reached at most 3 moves
      before without a pick-up in between (A-B-A flip-flops and tight loops);
    * ``repeat_corner_share``: share of a vacant spell's corners that are visits to a corner the driver
      already passed in that spell;
    * ``hot_corner_passes_per_hour``: vacant passes per hour at the ``hot_top`` corners with the most
      pick-ups, and the share of all vacant passes that go there;
    * ``pickups_per_pass_hot``: pick-ups per vacant pass at those corners (how crowded they are).
    """
    from .engine_numpy import NumpyEngine  # noqa: F401  (built by build_engine(numpy=True))

    engine = build_engine(p, numpy=True)
    engine.move_log = []
    out = engine.run()
    net = engine.net
    drv = np.concatenate([m[0] for m in engine.move_log])
    pair = np.concatenate([m[1] for m in engine.move_log])
    t = np.concatenate([m[2] for m in engine.move_log])
    order = np.lexsort((t, drv))
    drv, pair, t = drv[order], pair[order], t[order]
    corner = net.edge_dst[net.pair_to[pair]]
    uturn = net.pair_turn[pair] == UTURN
    vacant_h = float(out.min_vacant.sum()) / 60.0
    # spells: a new spell starts at a driver change or when the gap between moves is more than one move can take
    gap = np.diff(t, prepend=-np.inf)
    new = np.r_[True, drv[1:] != drv[:-1]] | (gap > 15.0)
    spell = np.cumsum(new) - 1
    back3 = np.zeros(corner.size, dtype=bool)
    for lag in (2, 3):
        same = np.zeros(corner.size, dtype=bool)
        same[lag:] = (corner[lag:] == corner[:-lag]) & (spell[lag:] == spell[:-lag])
        back3 |= same
    key = spell.astype(np.int64) * net.n_nodes + corner
    _, first = np.unique(key, return_index=True)
    repeat = 1.0 - first.size / corner.size
    picks = np.bincount(engine.pax.node[out.trip_log["passenger"]], minlength=net.n_nodes)
    hot = np.argsort(picks)[::-1][:hot_top]
    passes = np.bincount(corner, minlength=net.n_nodes)
    hours = float(np.ptp(t)) / 60.0 if t.size else 1.0
    return {
        "vacant_hours": round(vacant_h, 1), "moves": int(corner.size),
        "uturns_per_vacant_hour": round(float(uturn.sum()) / vacant_h, 3),
        "uturn_share": round(float(uturn.mean()), 4),
        "return_within_3": round(float(back3.mean()), 4),
        "repeat_corner_share": round(float(repeat), 4),
        "hot_corner_passes_per_hour": round(float(passes[hot].sum()) / hours / hot_top, 2),
        "hot_share_of_passes": round(float(passes[hot].sum() / max(passes.sum(), 1)), 4),
        "pickups_per_pass_hot": round(float(picks[hot].sum() / max(passes[hot].sum(), 1)), 4),
        "pickups_per_pass_all": round(float(picks.sum() / max(passes.sum(), 1)), 4),
        "objective": round(float(out.revenue.sum()) / max(out.shifts.n_shifts, 1), 1),
    }


def _production() -> NavigationParams:
    """conf/policy/production.yaml read as plain YAML (no Hydra, no project imports outside the simulator)."""
    import yaml  # PyYAML ships with Hydra/OmegaConf; imported here, only for the CLI

    path = Path(__file__).resolve().parents[2] / "conf" / "policy" / "production.yaml"
    p = yaml.safe_load(path.read_text())
    return NavigationParams.from_road_weights(float(p["gamma"]), float(p["max_wait_min"]), dict(p["road_weights"]),
                                              compliance=float(p["compliance"]))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("smoothness", "behaviour"))
    ap.add_argument("--n", type=int, default=8, help="perturbations per parameter (smoothness)")
    ap.add_argument("--seed", type=int, default=1001)
    ap.add_argument("--seeds", type=int, default=1, help="smoothness: this many seeds from --seed on")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a production parameter (gamma, max_wait_min, left, straight, right, uturn, "
                         "arterial, collector, local), e.g. --set uturn=20")
    args = ap.parse_args(argv)
    policy = _production()
    for item in args.set:
        name, value = item.split("=", 1)
        policy = with_value(policy, name, float(value))
    base = SimParams(**{**_test_week(), "seed": args.seed, "n_days": args.days}, policy=policy)
    t0 = time.perf_counter()
    if args.what == "smoothness":
        result = smoothness(policy, n=args.n, base=base, seeds=range(args.seed, args.seed + args.seeds))
    else:
        result = behaviour(base)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
