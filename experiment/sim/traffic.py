"""Time-of-day traffic: congestion, slow-moving share and turn delays.

Speeds in central Tokyo fall to roughly 70 % of free flow in the rush hours and recover at night; the
taxi meter's time charge applies while the cab is at or below 10 km/h, which happens mostly at
signals and in jams. Turn delays are where a left-hand-traffic city differs from a right-hand one:
a right turn in Tokyo crosses oncoming traffic and waits for a gap.
"""

from __future__ import annotations

import numpy as np

from .network import LEFT, RIGHT, STRAIGHT, UTURN

# travel-time multiplier on free-flow time, by hour of day (weekday); weekends are 10 % lighter by day
_WEEKDAY_CONGESTION = np.array(
    [1.00, 0.95, 0.92, 0.90, 0.90, 0.95, 1.10, 1.30, 1.40, 1.32, 1.25, 1.22,
     1.22, 1.22, 1.24, 1.26, 1.30, 1.38, 1.40, 1.32, 1.22, 1.15, 1.10, 1.05]
)
# share of trip time spent at or below 10 km/h (stopped at signals, pulling away, jams), by hour of day: the
# time the meter's time-distance charge counts. Japan's official urban driving pattern (the "10 mode" of the
# 10-15 mode fuel test, modelled on city driving: average 17.7 km/h) idles 36 of its 135 s and spends about
# another 15 s below 10 km/h pulling away and braking: about 0.37 of the time (pattern as listed by
# financialfield.jp, 2019). The day hours here are 0.26-0.36, the free-flowing night 0.10-0.14. (Issue 19:
# half these shares before, 13 % in the day, which left the time charge at 30 yen a ride, a third of
# what the 10 mode implies for a 12-minute ride.)
_SLOW_SHARE = 2.0 * np.array(
    [0.06, 0.05, 0.05, 0.05, 0.05, 0.06, 0.09, 0.14, 0.17, 0.15, 0.13, 0.13,
     0.13, 0.13, 0.13, 0.14, 0.15, 0.17, 0.18, 0.15, 0.12, 0.10, 0.08, 0.07]
)
#: Seconds lost per turn type (left, straight, right, U) where traffic drives on the left.
TURN_DELAY_S_LEFT_HAND = np.array([4.0, 6.0, 24.0, 45.0])


def congestion(hour_of_week: np.ndarray | int) -> np.ndarray:
    """Travel-time multiplier for an hour of the week (0 = Monday 00:00)."""
    how = np.asarray(hour_of_week) % 168
    day, hour = how // 24, how % 24
    base = _WEEKDAY_CONGESTION[hour]
    weekend_relief = np.where((day >= 5) & (hour >= 7) & (hour <= 20), 0.9, 1.0)
    return base * weekend_relief


def slow_share(hour_of_week: np.ndarray | int) -> np.ndarray:
    """Share of driving time at or below 10 km/h."""
    return _SLOW_SHARE[np.asarray(hour_of_week) % 24]


def turn_delay_s(drive_side: str) -> np.ndarray:
    """Delay per turn type; in right-hand traffic the left turn is the hard one."""
    d = TURN_DELAY_S_LEFT_HAND.copy()
    if drive_side == "right":
        d[LEFT], d[RIGHT] = TURN_DELAY_S_LEFT_HAND[RIGHT], TURN_DELAY_S_LEFT_HAND[LEFT]
    assert d[STRAIGHT] >= 0 and d[UTURN] > 0
    return d
