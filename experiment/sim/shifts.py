"""Driver shifts as Tokyo taxi companies run them.

Most Tokyo drivers work alternate-day shifts (隔日勤務: about 07:30 to 04:30 the next morning, at most
22 h in two calendar days, three hours of breaks, then a day off); the rest work day shifts (日勤) or
night shifts (夜勤) of about 11 h with a one-hour break, five days a week
(driver-roudou-jikan.mhlw.go.jp/taxi/notice). Every shift starts and ends at the driver's depot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHIFT_KINDS: tuple[str, ...] = ("alternate", "day", "night")
MAX_BREAKS = 3


@dataclass(frozen=True)
class ShiftPlan:
    """All shifts of a window, sorted by start time (minutes from window start)."""

    driver: np.ndarray  # (s,) int32
    day: np.ndarray  # (s,) int32 operating day the shift belongs to
    kind: np.ndarray  # (s,) int8 index into SHIFT_KINDS
    start: np.ndarray  # (s,) float64
    end: np.ndarray  # (s,) float64 time the driver must be back at the depot
    breaks: np.ndarray  # (s, MAX_BREAKS) float64 break start times, inf where none
    break_min: float
    driver_kind: np.ndarray  # (n_drivers,) int8

    @property
    def n_shifts(self) -> int:
        return int(self.driver.size)


def plan_shifts(
    n_drivers: int,
    days: int,
    first_weekday: int,
    mix: tuple[float, float, float],
    rng: np.random.Generator,
    max_shift_h: float | None = None,
    break_min: float = 60.0,
) -> ShiftPlan:
    """Draw each driver's shift type and habits, then lay out the shifts starting in ``days`` days."""
    p = np.asarray(mix, dtype=float) / sum(mix)
    kind = rng.choice(3, size=n_drivers, p=p).astype(np.int8)
    parity = rng.integers(0, 2, n_drivers)  # alternate-day drivers: which days they work
    off_start = rng.integers(0, 7, n_drivers)  # day/night drivers: first of two consecutive days off
    habit = rng.normal(0.0, 35.0, n_drivers)  # a driver's usual start offset (min)
    base_start = np.array([7.5 * 60, 7.0 * 60, 18.0 * 60])[kind] + habit
    length = np.array([20.0, 11.0, 11.0])[kind] * 60.0
    break_offsets = np.array(
        [[300.0, 600.0, 900.0], [300.0, np.inf, np.inf], [300.0, np.inf, np.inf]]
    )[kind]

    rows = []
    for d in range(days):
        weekday = (first_weekday + d) % 7
        works = np.where(
            kind == 0,
            (d + parity) % 2 == 0,
            ((weekday - off_start) % 7) >= 2,
        )
        idx = np.flatnonzero(works)
        jitter = rng.normal(0.0, 10.0, idx.size)
        start = d * 1440.0 + base_start[idx] + jitter
        rows.append((idx, np.full(idx.size, d), start, length[idx], break_offsets[idx]))
    driver = np.concatenate([r[0] for r in rows]).astype(np.int32)
    day = np.concatenate([r[1] for r in rows]).astype(np.int32)
    start = np.maximum(np.concatenate([r[2] for r in rows]), 0.0)
    dur = np.concatenate([r[3] for r in rows])
    if max_shift_h is not None:
        dur = np.minimum(dur, max_shift_h * 60.0)
    brk = np.concatenate([r[4] for r in rows], axis=0)
    brk = np.where(brk + break_min <= dur[:, None] - 30.0, start[:, None] + brk, np.inf)
    order = np.argsort(start, kind="stable")
    return ShiftPlan(
        driver=driver[order],
        day=day[order],
        kind=kind[driver[order]],
        start=start[order],
        end=(start + dur)[order],
        breaks=brk[order],
        break_min=break_min,
        driver_kind=kind,
    )
