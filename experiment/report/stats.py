"""The statistics of the champion/challenger report: paired improvements with t-intervals (the decision that
uses them: :mod:`experiment.report.sequential`). Pure functions on plain numbers (no simulator, no Hydra), so the maths is tested on made-up values.

Why paired: replication ``r`` simulates both parameter sets with the same seed (common random numbers: the
same passengers, forecast errors and shifts), so the week-to-week noise cancels in the per-replication
difference and a few replications give a tight interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided t-interval (``lo``, ``hi``), from ``n`` values with sample SD ``sd``."""

    mean: float
    lo: float
    hi: float
    sd: float
    n: int


def t_quantile(level: float, df: int) -> float:
    """Two-sided Student-t critical value, e.g. 2.776 for level 0.95 and 4 degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, df))


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` with a t-interval (needs at least two values: one gives no spread)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n < 2:
        raise ValueError(f"a confidence interval needs at least 2 replications, got {n}")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError(f"non-finite values: {xs}")
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(level, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n)


def paired_pct_differences(baseline: Sequence[float], challenger: Sequence[float]) -> list[float]:
    """Per-replication improvement of the challenger over the baseline in %: 100 * (c_r / b_r - 1)."""
    if len(baseline) != len(challenger):
        raise ValueError(f"paired replications differ in number: {len(baseline)} vs {len(challenger)}")
    out = []
    for b, c in zip(baseline, challenger):
        if not float(b) > 0:
            raise ValueError(f"baseline revenue must be > 0 for a % difference, got {b}")
        out.append(100.0 * (float(c) / float(b) - 1.0))
    return out


def paired_improvement(baseline: Sequence[float], challenger: Sequence[float], level: float = 0.95) -> Interval:
    """Improvement in % as the mean of the per-replication paired % differences, with its t-interval
    (n - 1 degrees of freedom). Identical values give exactly 0 with a zero-width interval."""
    return mean_interval(paired_pct_differences(baseline, challenger), level)

