"""A calendar for the simulated city: what changes on which date (the ``scenario`` config group).

A :class:`Scenario` is monthly seasonality, a trend and a list of dated :class:`Change` s. For a window
it gives one :class:`DayState` per simulated calendar day (:meth:`Scenario.days`), so a window's dates
matter only through the scenario (and the weekday): a 7-day window across a change date sees the change
on the days after it. The simulator applies the states to its *inputs* (hail rates per day, customer
patience per passenger, the hourly congestion factor, the right-turn delay, which drivers work, one
extra hot spot): nothing is added to the compiled per-minute loop.

The stationary city is ``Scenario()`` (every factor 1, no changes); :func:`simulate` treats
``scenario_days=None`` and an all-ones state identically, so today's results are reproduced exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from .regions import HOTSPOT_KINDS


@dataclass(frozen=True)
class NewHotspot:
    """A hot spot that opens on a date (a redevelopment, a new station): street hails around it."""

    name: str
    kind: str  # station | nightlife | office (the daily profile it follows)
    x: float  # metres, region coordinates
    y: float
    sigma_m: float
    weight: float  # street-hail mass relative to the region's hot spots (Tokyo Station is 3.0)
    learned_after_days: int = 56  # the historical (stats) forecast sees it only after this many days

    def __post_init__(self) -> None:
        if self.kind not in HOTSPOT_KINDS:
            raise ValueError(f"hotspot kind {self.kind!r}; allowed: {', '.join(HOTSPOT_KINDS)}")
        if not (self.sigma_m > 0 and self.weight > 0):
            raise ValueError("hotspot sigma_m and weight must be > 0")


@dataclass(frozen=True)
class Change:
    """One dated change; factors multiply the stationary city's value from ``start`` until ``end``
    (exclusive; None = for good). ``source`` names a public source for its size, or "assumption"."""

    label: str
    start: dt.date
    end: dt.date | None = None
    demand: float = 1.0  # street-hail requests
    patience: float = 1.0  # how long customers wait for a taxi (truth)
    congestion: float = 1.0  # travel time on every road, every hour
    right_turn_delay: float = 1.0  # seconds a right turn waits for a gap in oncoming traffic
    fleet: float = 1.0  # share of the drivers still working
    hotspot: NewHotspot | None = None
    source: str = "assumption"

    def active(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True)
class DayState:
    """The city on one calendar date: multipliers on the stationary city, and the extra hot spot."""

    demand: float = 1.0
    patience: float = 1.0
    congestion: float = 1.0
    right_turn_delay: float = 1.0
    fleet: float = 1.0
    hotspot: float = 0.0  # weight multiplier of the scenario's new hot spot (0 before it opens)
    hotspot_known: float = 0.0  # share of it the historical forecast knows

    @property
    def stationary(self) -> bool:
        return self == DayState()


@dataclass(frozen=True)
class ScenarioDays:
    """The states of a window's consecutive days (index 0 = the window's first day), plus the hot spot."""

    states: tuple[DayState, ...]
    hotspot: NewHotspot | None = None

    def column(self, name: str) -> np.ndarray:
        return np.array([getattr(s, name) for s in self.states], dtype=float)

    @property
    def stationary(self) -> bool:
        return all(s.stationary for s in self.states)


@dataclass(frozen=True)
class Scenario:
    """Monthly seasonality x trend x dated changes (see conf/scenario/*.yaml for the sources)."""

    name: str = "stationary"
    monthly_demand: tuple[float, ...] = (1.0,) * 12  # January first
    monthly_patience: tuple[float, ...] = (1.0,) * 12
    trend_pct_per_year: float = 0.0  # demand, compounded by calendar month from trend_anchor's month
    trend_anchor: dt.date = dt.date(2026, 6, 1)
    changes: tuple[Change, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.monthly_demand) != 12 or len(self.monthly_patience) != 12:
            raise ValueError("monthly_demand and monthly_patience need 12 values (January first)")
        if sum(c.hotspot is not None for c in self.changes) > 1:
            raise ValueError("at most one change may open a hot spot")

    @property
    def hotspot(self) -> NewHotspot | None:
        return next((c.hotspot for c in self.changes if c.hotspot is not None), None)

    def state(self, day: dt.date) -> DayState:
        """The city on ``day``."""
        m = day.month - 1
        # by calendar month, so the anchor's month is exactly the stationary city
        years = ((day.year - self.trend_anchor.year) * 12 + day.month - self.trend_anchor.month) / 12.0
        demand = self.monthly_demand[m] * (1.0 + self.trend_pct_per_year / 100.0) ** years
        patience = self.monthly_patience[m]
        cong = rt = fleet = 1.0
        hot = known = 0.0
        for c in self.changes:
            if not c.active(day):
                continue
            demand *= c.demand
            patience *= c.patience
            cong *= c.congestion
            rt *= c.right_turn_delay
            fleet *= c.fleet
            if c.hotspot is not None:
                hot = 1.0
                known = min(1.0, (day - c.start).days / max(c.hotspot.learned_after_days, 1))
        return DayState(demand, patience, cong, rt, fleet, hot, known)

    def days(self, start: dt.date, n_days: int) -> ScenarioDays | None:
        """States of ``n_days`` consecutive days from ``start``; None when the city is stationary there
        (the simulator then runs exactly as without a scenario)."""
        out = ScenarioDays(tuple(self.state(start + dt.timedelta(days=i)) for i in range(n_days)), self.hotspot)
        return None if out.stationary else out


def fleet_mask(n_drivers: int, share: np.ndarray, seed: int) -> np.ndarray:
    """(drivers, days) True where the driver works for the company that day: the same drivers leave
    first and come back first (a fixed order per seed, its own random stream)."""
    rank = np.random.default_rng([seed, 505]).permutation(n_drivers)
    return rank[:, None] < np.round(np.asarray(share)[None, :] * n_drivers)
