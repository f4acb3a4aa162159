"""The year of ``bench retune`` in hindsight (issue 22, item 4): what a re-tuner that knew the future would pick.

Two references that no real cycle can have, so that re-tuning's gain over frozen can be read as a share of the
gain that was there:

* **best fixed**: the one setting with the best mean over all service periods (tuning once, knowing the year);
* **per-period oracle**: each service period's own best setting (re-tuning that knew each period in advance).

Both are found by one search over the same candidates, on *selection* replications of each period (its 7-day
weeks, seeds ``cycle_seed(week) + 800 + r``), apart from the evaluation's replications (``+ 700 + r``), so the
figures the bench reports are not inflated by having been chosen on the same noise:

1. the candidates: a scrambled Sobol design of ``points`` points over the cycles' search space, production, every
   champion of the year and, when ``docs/oracle-<search_space>.json`` exists, the test week's oracle;
2. stage 1: every candidate on one seed per week of every period (common random numbers), scored per period as the
   mean paired % difference against production;
3. stage 2: the year's ``finalists`` best by mean score over periods on a second seed per week (the best by the
   mean of both seeds is the best fixed setting); then per period its ``finalists`` best of stage 1, the best fixed
   setting and the champion serving the period, on both seeds: the best is the period's own.

Simulations go through :class:`benchmarks.oracle.Evaluator` with its append-only cache under the bench's outputs,
so a stopped bench resumes the search where it stopped. The search is far smaller than ``bench oracle``'s (no
refinement): the per-period oracle is a lower bound of the attainable per-period optimum, which the JSON says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

SELECTION_SEED_OFFSET = 800  # selection seeds: cycle_seed(week start) + 800 + r, clear of the evaluation's +700


def selection_seed(week: dt.date, r: int) -> int:
    """The ``r``-th selection seed of the 7-day week from ``week`` (apart from every cycle's and the evaluation's)."""
    from experiment.windows import cycle_seed

    return cycle_seed(week) + SELECTION_SEED_OFFSET + r


@dataclass(frozen=True)
class HindsightBudget:
    """How hard the hindsight search looks (``bench.hindsight_points``; 0 switches it off)."""

    points: int = 32  # Sobol design points (a power of 2)
    finalists: int = 4  # candidates per period (and for the year) taken to the second seed
    seeds: int = 2  # seeds per week: the first for stage 1, all for the finalists
    seed: int = 0  # the Sobol scramble


@dataclass
class Choice:
    """The settings the search picked: one for the whole year, one per period (as points of the search space)."""

    best_fixed: dict[str, float]
    per_period: list[dict[str, float]]
    candidates: int
    simulations: int
    method: str


def point_of_policy(policy: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    """The values of ``policy.*`` names (``policy.road_weights.right``) in a policy dict."""
    out = {}
    for name in names:
        node: Any = policy
        for part in name.removeprefix("policy.").split("."):
            node = node[part]
        out[name] = float(node)
    return out


def policy_of_point(base: Mapping[str, Any], point: Mapping[str, float]) -> dict[str, Any]:
    """``base`` (a policy dict) with the point's values, as floats (what the simulator reads them as)."""
    import copy

    policy = copy.deepcopy(dict(base))
    for name, value in point.items():
        parts = name.removeprefix("policy.").split(".")
        node = policy
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = float(value)
    return policy


def design(dims: Sequence[Any], fixed: Mapping[str, float], budget: HindsightBudget) -> list[dict[str, float]]:
    """The Sobol candidates (``points`` a power of 2)."""
    from benchmarks.oracle import point_of, sobol

    return [dict(fixed) | point_of(dims, row) for row in sobol(dims, budget.points, budget.seed)]


def _unique(points: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """The points without repeats (values compared to 9 decimals), in their first order."""
    out: list[dict[str, float]] = []
    for p in points:
        q = {k: round(float(v), 9) for k, v in p.items()}
        if q not in out:
            out.append(q)
    return out


def search(ev: Any, periods: Sequence[Sequence[dt.date]], seed_of: Callable[[dt.date, int], int],
           candidates: Sequence[Mapping[str, float]], production: Mapping[str, float], budget: HindsightBudget,
           serving: Sequence[Mapping[str, float]] = ()) -> tuple[dict[str, float], list[dict[str, float]]]:
    """(best fixed, per-period best) among ``candidates`` and production. ``periods``: each period's week starts;
    ``serving``: the champion serving each period, always a finalist of its period (with the best fixed setting),
    so a period's own best is never worse on the selection seeds than what served it or than the year's best.
    ``ev.values`` simulates (week ISO date, point, seed) jobs with caching."""
    cands = _unique([production, *candidates])
    n_seeds = max(1, budget.seeds)
    k = max(1, budget.finalists)

    def scores(points: Sequence[dict[str, float]], p: int, seeds: int, stage: str) -> list[float]:
        """Mean paired % vs production of each point over the period's weeks x the first ``seeds`` seeds."""
        reps = [(w.isoformat(), seed_of(w, r)) for w in periods[p] for r in range(seeds)]
        jobs = [(week, pt, s) for pt in [cands[0], *points] for week, s in reps]
        values = ev.values(jobs, stage)
        n = len(reps)
        base = values[:n]
        return [sum(100.0 * (c / b - 1.0) for b, c in zip(base, values[(i + 1) * n:(i + 2) * n])) / n
                for i in range(len(points))]

    first = [scores(cands, p, 1, f"stage 1 (period {p + 1}/{len(periods)})") for p in range(len(periods))]
    year = [sum(row[i] for row in first) / len(periods) for i in range(len(cands))]
    year_top = [cands[i] for i in sorted(range(len(cands)), key=lambda i: -year[i])[:k]]
    finals = [scores(year_top, p, n_seeds, f"stage 2 (the year, period {p + 1}/{len(periods)})")
              for p in range(len(periods))]
    best_fixed = year_top[max(range(len(year_top)), key=lambda j: sum(f[j] for f in finals))]
    per_period: list[dict[str, float]] = []
    for p, row in enumerate(first):
        top = [cands[i] for i in sorted(range(len(cands)), key=lambda i: -row[i])[:k]]
        top = _unique([*top, best_fixed, *([serving[p]] if p < len(serving) else [])])
        final = scores(top, p, n_seeds, f"stage 2 (period {p + 1}/{len(periods)})")
        per_period.append(top[max(range(len(top)), key=lambda j: final[j])])
    return best_fixed, per_period


def captured_share(retuned: Sequence[float], oracle: Sequence[float], target: float) -> dict[str, Any]:
    """The share of the per-period oracle's gain that re-tuning captured, from their per-period uplifts (%) over
    the same reference. Not measurable (``share`` None) when the oracle's mean gain is not larger than its own 95 %
    half-width. ``target_margin_ci95``: the t-interval over periods of ``retuned - target * oracle``; its lower
    bound above 0 shows the share above ``target`` with 95 % confidence, beyond the point estimate."""
    from experiment.report.stats import mean_interval

    o, r = mean_interval(oracle), mean_interval(retuned)
    half = (o.hi - o.lo) / 2.0
    margin = mean_interval([a - target * b for a, b in zip(retuned, oracle)])
    out: dict[str, Any] = {"target_margin_ci95": [round(margin.lo, 3), round(margin.hi, 3)],
                           "shown_above_target": None}
    if o.mean <= half:
        return {**out, "share": None, "note": (
            f"not measurable: the per-period oracle's gain ({o.mean:+.3f} %) is not larger than its own 95 % "
            f"half-width ({half:.3f} %)")}
    share = r.mean / o.mean
    return {**out, "share": round(share, 3), "shown_above_target": margin.lo > 0, "note": (
        f"re-tuning {r.mean:+.3f} % of the per-period oracle's {o.mean:+.3f} % (95 % half-width {half:.3f} %); "
        f"share {share:.3f}, {'shown' if margin.lo > 0 else 'not shown'} above {target} with 95 % confidence "
        "(the oracle is a lower bound of the attainable, so the share is an upper bound)")}


def method_text(budget: HindsightBudget, n_candidates: int) -> str:
    """What the search did, for the bench's JSON (``hindsight.method``)."""
    return (f"{n_candidates} candidates (a scrambled Sobol design of {budget.points} points over the cycles' "
            "search space, production, the year's champions and the test week's oracle when docs/ has it), each on "
            f"one selection seed per 7-day week of every period (cycle_seed(week) + {SELECTION_SEED_OFFSET}); the "
            f"year's {budget.finalists} best, then each period's {budget.finalists} best with the best fixed setting "
            f"and the period's serving champion, on {budget.seeds} seeds per week; chosen by the mean paired % "
            "against production, then reported on the evaluation replications. No refinement: the per-period "
            "oracle is a lower bound of each period's attainable optimum.")


def candidates_of(cycle_config: Any, champions: Sequence[Mapping[str, Any]], production_policy: Mapping[str, Any],
                  budget: HindsightBudget, root: Path) -> tuple[list[str], dict[str, float], list[dict[str, float]]]:
    """(searched names, production's point, candidates): the design, the champions and the test week's oracle.
    A search space the oracle cannot search is one line (``OracleError``), checked before the year too."""
    import json

    from benchmarks.oracle import parse_space, search_space_params

    dims, fixed = parse_space(search_space_params(cycle_config))
    names = [d.name for d in dims] + list(fixed)
    extra = [point_of_policy(c, names) for c in champions]
    space = str(cycle_config.hydra.runtime.choices.get("search_space") or "")
    oracle_file = root / "docs" / f"oracle-{space}.json"
    if space and oracle_file.is_file():
        params = json.loads(oracle_file.read_text()).get("params") or {}
        if set(params) == set(names):
            extra.append({k: float(v) for k, v in params.items()})
    production = point_of_policy(production_policy, names)
    return names, production, _unique([production, *design(dims, fixed, budget), *extra])


def choose(city_params: Callable[[dt.date], Any], cycle_config: Any, periods: Sequence[Sequence[dt.date]],
           serving: Sequence[Mapping[str, Any]], production_policy: Mapping[str, Any], cache_path: Path,
           workers: int, budget: HindsightBudget, log: Callable[[str], None], root: Path, pool: Any = None) -> Choice:
    """Run the search. ``city_params(week)``: SimParams of that week with production's policy; ``cycle_config``:
    the composed config of a cycle (its ``hydra.sweeper.params`` is the searched space); ``serving``: the champion
    policy serving each period; ``pool``: a process pool to share (else the Evaluator starts its own)."""
    from benchmarks.oracle import Cache, Evaluator

    names, production, candidates = candidates_of(cycle_config, serving, production_policy, budget, root)
    weeks = sorted({w for ws in periods for w in ws})
    ev = Evaluator(Cache(cache_path), {w.isoformat(): city_params(w) for w in weeks}, workers, log, name="hindsight",
                   pool=pool)
    try:
        best_fixed, per_period = search(ev, periods, selection_seed, candidates, production, budget,
                                        [point_of_policy(c, names) for c in serving])
    finally:
        ev.close()
    return Choice(best_fixed, per_period, len(candidates), len(ev.used), method_text(budget, len(candidates)))
