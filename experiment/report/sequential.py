"""The sequential champion/challenger decision: paired replications are added in batches ("looks") and the
challenger is promoted, rejected or left undecided as soon as the evidence allows. Pure functions on plain
numbers (no simulator, no Hydra), so the stopping rule is tested on known cases.

Why sequential: a fixed number of replications is too few for a small real gain and too many for a clear win or a
clear loss. Looking after every batch and stopping early is only sound if the intervals account for the repeated
looks: an ordinary 95 % interval checked four times covers the truth far less than 95 % of the time.

The method: **repeated confidence intervals** (Jennison & Turnbull 1989; 2000, ch. 9) with **Pocock's constant
boundary** (Pocock 1977). At each of the planned looks the interval uses the same nominal level, chosen so that
*all* the looks' intervals cover the true gain together with probability ``1 - alpha`` (a normal random walk,
solved by recursive numerical integration as Armitage, McPherson & Rowe 1969 did). The spread is unknown, so
each look's interval takes that nominal level on the Student-t distribution with ``n - 1`` degrees of freedom
(Jennison & Turnbull 2000, §3.8 and §9.2).

The decision at a look, for the paired per-replication % gains of each demand source:
- **promote** when every demand source's lower bound is above 0 (shown better for every forecast);
- **reject** when some demand source's upper bound is below ``min_gain_pct`` (shown not better by that material
  margin for that forecast);
- else add a batch; at the last planned look (``max_replications``) the challenger is **undecided**.

Promotion needs every source's lower bound above 0, so a challenger that is not better for one of them is
promoted with probability about ``alpha / 2`` however many looks are taken (one side of one source's intervals;
the t carrying is an approximation: 2.9 % simulated for the default design).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from experiment.report.stats import Interval

PROMOTE, REJECT, UNDECIDED = "promote", "reject", "undecided"
#: the method as report.json and docs/report.md name it
METHOD = ("group-sequential repeated confidence intervals (Jennison & Turnbull 1989), Pocock constant boundary "
          "(Pocock 1977) over the planned looks, Student-t with n-1 degrees of freedom at the nominal level")
MAX_LOOKS = 50  # planned looks a design may have (the boundary is computed for every one of them)


def planned_looks(first: int, batch: int, max_replications: int) -> tuple[int, ...]:
    """The replications at each look: ``first``, then every ``batch`` more, the last at ``max_replications``."""
    looks = list(range(first, max_replications + 1, batch))
    if looks[-1] != max_replications:
        looks.append(max_replications)
    return tuple(looks)


def _grid(half: float, m: int) -> tuple[list[float], list[float]]:
    """Simpson's rule on [-half, half] with ``m`` (odd) points: nodes and weights."""
    import numpy as np

    x = np.linspace(-half, half, m)
    w = np.ones(m)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * (x[1] - x[0]) / 3.0


def crossing_probability(c: float, information: Sequence[float], m: int = 401) -> float:
    """P(|Z_k| >= c at some look k) for a standard normal random walk observed at ``information`` (increasing
    information levels, e.g. replication counts), Z_k = S_k / sqrt(I_k), under no effect. Recursive numerical
    integration of the walk's density over the continuation region (|S_k| < c sqrt(I_k))."""
    import numpy as np
    from scipy.stats import norm

    info = [float(i) for i in information]
    if not info or any(b <= a for a, b in zip(info, info[1:])) or info[0] <= 0:
        raise ValueError(f"information levels must be positive and increasing, got {information}")
    crossed = 2.0 * norm.sf(c)
    x, w = _grid(c * math.sqrt(info[0]), m)
    density = norm.pdf(x, scale=math.sqrt(info[0]))
    for prev, cur in zip(info, info[1:]):
        step = math.sqrt(cur - prev)
        bound = c * math.sqrt(cur)
        mass = w * density
        crossed += float(np.sum(mass * (norm.cdf((-bound - x) / step) + norm.sf((bound - x) / step))))
        y, wy = _grid(bound, m)
        density = norm.pdf((y[:, None] - x[None, :]) / step).dot(mass) / step
        x, w = y, wy
    return crossed


@functools.lru_cache(maxsize=64)
def pocock_constant(information: tuple[float, ...], alpha: float = 0.05) -> float:
    """The constant critical value c with P(|Z_k| >= c at some look) = ``alpha`` under no effect: 1.960 for
    one look, 2.178 for two equally spaced looks, 2.413 for five (Pocock 1977, Table 1)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if len(information) == 1:
        return float(norm.isf(alpha / 2.0))
    return float(brentq(lambda c: crossing_probability(c, information) - alpha, norm.isf(alpha / 2.0), 6.0,
                        xtol=1e-6))


def repeated_interval(values: Sequence[float], nominal_alpha: float) -> Interval:
    """Mean of ``values`` with its two-sided interval at the nominal level ``1 - nominal_alpha`` (t with n - 1
    degrees of freedom)."""
    from experiment.report.stats import mean_interval

    return mean_interval(values, 1.0 - nominal_alpha)


def outcome_of(intervals: Mapping[str, Interval], min_gain_pct: float) -> str | None:
    """The decision one look's intervals allow: PROMOTE, REJECT or None (look again). Promotion wins when both
    hold (every source shown better, if by less than the margin)."""
    if intervals and all(iv.lo > 0.0 for iv in intervals.values()):
        return PROMOTE
    if any(iv.hi < min_gain_pct for iv in intervals.values()):
        return REJECT
    return None


@dataclass(frozen=True)
class Look:
    """One look: the replications it used, each demand source's interval and what it decided."""

    n: int
    intervals: dict[str, Interval]
    outcome: str | None

    def as_dict(self) -> dict[str, object]:
        return {"replications": self.n, "outcome": self.outcome,
                "improvement_pct": {d: iv.mean for d, iv in self.intervals.items()},
                "interval_pct": {d: [iv.lo, iv.hi] for d, iv in self.intervals.items()}}


@dataclass(frozen=True)
class SequentialDesign:
    """The first look after ``first`` replications, then one after every ``batch`` more, up to
    ``max_replications`` (the last look at the cap), with the repeated intervals' overall level ``1 - alpha`` and
    the reject margin ``min_gain_pct``."""

    first: int
    batch: int
    max_replications: int
    min_gain_pct: float = 0.2
    alpha: float = 0.05
    _looks: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        if self.first < 2:
            raise ValueError(f"a look needs at least 2 replications, got first={self.first}")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")
        if self.max_replications < self.first:
            raise ValueError(f"max_replications={self.max_replications} is below the first look ({self.first})")
        looks = planned_looks(self.first, self.batch, self.max_replications)
        if len(looks) > MAX_LOOKS:
            raise ValueError(f"{len(looks)} looks planned; at most {MAX_LOOKS}")
        object.__setattr__(self, "_looks", looks)

    @property
    def looks(self) -> tuple[int, ...]:
        return self._looks

    @property
    def constant(self) -> float:
        return pocock_constant(tuple(float(n) for n in self.looks), self.alpha)

    @property
    def nominal_alpha(self) -> float:
        """The two-sided level each look's interval is taken at (below ``alpha`` when there is more than one look)."""
        from scipy.stats import norm

        return float(2.0 * norm.sf(self.constant))

    def look(self, diffs: Mapping[str, Sequence[float]]) -> Look:
        """The look at the replications given (all sources equally many); at the last planned look an open
        outcome becomes UNDECIDED."""
        ns = {len(v) for v in diffs.values()}
        if len(ns) != 1:
            raise ValueError(f"demand sources have different numbers of replications: {sorted(ns)}")
        n = ns.pop()
        intervals = {d: repeated_interval(v, self.nominal_alpha) for d, v in diffs.items()}
        outcome = outcome_of(intervals, self.min_gain_pct)
        if outcome is None and n >= self.max_replications:
            outcome = UNDECIDED
        return Look(n, intervals, outcome)

    def decide(self, diffs: Mapping[str, Sequence[float]]) -> list[Look]:
        """Every look taken on the per-replication gains given (at least ``max_replications`` each, or as many as
        the decision needs): the last one carries the outcome. For benches that simulated ahead."""
        looks: list[Look] = []
        for n in self.looks:
            if any(len(v) < n for v in diffs.values()):
                raise ValueError(f"look at {n} replications: fewer given")
            looks.append(self.look({d: list(v)[:n] for d, v in diffs.items()}))
            if looks[-1].outcome is not None:
                break
        return looks

    def describe(self) -> dict[str, object]:
        """The design as report.json records it (a fixed rule's margin, -inf, as null: JSON has no infinity)."""
        margin = self.min_gain_pct if math.isfinite(self.min_gain_pct) else None
        return {"method": METHOD, "planned_looks": list(self.looks), "alpha": self.alpha,
                "boundary_constant": round(self.constant, 4),
                "nominal_level_per_look": round(1.0 - self.nominal_alpha, 5), "min_gain_pct": margin,
                "first": self.first, "batch": self.batch, "max_replications": self.max_replications}
