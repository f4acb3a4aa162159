"""Tokyo taxi fare schedule (23 wards + Musashino/Mitaka, since 14 Nov 2022).

500 yen for the first 1.096 km, then 100 yen per 255 m; while the cab moves at 10 km/h or slower the
meter also advances 100 yen per 1 min 35 s (time-distance system); 22:00-05:00 the fare is 20 % higher.
Sources: nikkoren.jp/fare/, hk-grp.or.jp/en/publics/index/741/.
"""

from __future__ import annotations

import numpy as np

BASE_YEN = 500
BASE_M = 1096.0
STEP_YEN = 100
STEP_M = 255.0
SLOW_STEP_S = 95.0
LATE_NIGHT_FACTOR = 1.2
LATE_NIGHT_HOURS = (22, 5)  # [22:00, 05:00)


def is_late_night(minute_of_day: np.ndarray | float) -> np.ndarray | bool:
    """True for pick-ups between 22:00 and 05:00."""
    m = np.asarray(minute_of_day) % 1440
    return (m >= LATE_NIGHT_HOURS[0] * 60) | (m < LATE_NIGHT_HOURS[1] * 60)


def tokyo_fare(
    distance_m: np.ndarray | float,
    slow_s: np.ndarray | float = 0.0,
    late_night: np.ndarray | bool = False,
) -> np.ndarray:
    """Meter fare in yen.

    ``distance_m`` is the distance driven, ``slow_s`` the seconds spent at or below 10 km/h (each 95 s of
    it counts as one 255 m step), ``late_night`` applies the 20 % surcharge of 22:00-05:00.
    """
    d = np.asarray(distance_m, dtype=float)
    steps = np.ceil(np.maximum(d - BASE_M, 0.0) / STEP_M - 1e-9)
    steps = steps + np.floor(np.asarray(slow_s, dtype=float) / SLOW_STEP_S + 1e-9)
    fare = BASE_YEN + STEP_YEN * steps
    if np.ndim(late_night) == 0:  # one tariff for all: skip the other (6 million fares per region build)
        return np.asarray(np.round(fare * LATE_NIGHT_FACTOR) if late_night else fare)
    return np.where(late_night, np.round(fare * LATE_NIGHT_FACTOR), fare)
