"""The revenue simulation: drivers on shifts cruise, pick up street-hail passengers and drive them.

Time is continuous (minutes from the window start); the loop advances in one-minute buckets and, within
a bucket, moves every vacant driver edge by edge (a compiled per-driver loop,
:mod:`experiment.sim.kernels`; the vectorised NumPy loop it replaced is kept in
:mod:`experiment.sim.engine_numpy`) until each has passed the bucket's end. Per driver the states are: off shift, vacant (cruising), occupied, on a break, returning
to the depot. Every minute of a shift is spent in exactly one of them, a passenger is picked up at most
once and only while waiting, and drivers compete for the same passengers.

The buckets are the model's time resolution: drivers reaching corners in the same pass of a bucket are
served in driver order (not strictly by arrival time within that minute), a driver whose trip or break
ends inside a minute is released at the next bucket (continuing from the exact end time), and customers
whose patience ran out are removed at bucket starts. Each effect is under a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import kernels
from .demand import Passengers
from .fares import tokyo_fare, is_late_night
from .network import Network
from .shifts import ShiftPlan, MAX_BREAKS
from .network import LEFT, RIGHT
from .traffic import congestion, slow_share, turn_delay_s

if TYPE_CHECKING:
    from .navigation import CruisePolicy, NavigationPolicy
from .navigation import ChoiceTable

OFF, VACANT, OCCUPIED, BREAK, RETURNING = range(5)
OUTSIDE_KMH = 40.0  # expressway speed outside the region
WAITING, SERVED, ABANDONED, PENDING = range(4)


#: per-shift accumulators, in the order :func:`experiment.sim.kernels.drive_span` takes them (then t_end)
ACCUMULATORS = (
    "revenue", "trips", "km_vacant", "km_occupied", "km_return",
    "min_vacant", "min_occupied", "min_break", "min_return",
)


def run_key(seed: int) -> int:
    """The run's key of the counter-based choice draws (:func:`experiment.sim.kernels.choice_draw`): every
    decision's draw is a hash of this key, the driver and the driver's own decision number."""
    return int(np.random.default_rng([seed, 303]).integers(0, 1 << 63, dtype=np.int64))


class SimulationStopped(Exception):
    """Raised when the progress callback asks to stop (e.g. the trial was pruned)."""

    def __init__(self, day: int) -> None:
        super().__init__(f"stopped after day {day}")
        self.day = day


@dataclass
class EngineSettings:
    cruise_speed_factor: float = 0.7  # vacant taxis cruise slower, looking for hails
    return_buffer_min: float = 10.0


@dataclass
class SimOutput:
    """Per-shift accumulators, trips and passenger states after a run."""

    shifts: ShiftPlan
    revenue: np.ndarray
    trips: np.ndarray
    km_vacant: np.ndarray
    km_occupied: np.ndarray
    km_return: np.ndarray
    min_vacant: np.ndarray
    min_occupied: np.ndarray
    min_break: np.ndarray
    min_return: np.ndarray
    t_end: np.ndarray
    passenger_status: np.ndarray
    trip_log: dict[str, np.ndarray]
    decisions: int


class Engine:
    """Runs one simulation; ``policy`` gives each slot's rounded cumulative choice counts (D-1, edges).

    Each decision of a vacant driver draws its table entry from a counter-based hash of the run's key
    (``draw_key``, from the seed), the driver and the driver's own decision number, not from one stream that
    all drivers consume in turn: with common random numbers, a decision that changes (a parameter moved a
    little) changes that driver's path, not every later draw of every driver (issue 19)."""

    def __init__(
        self,
        net: Network,
        passengers: Passengers,
        dest_nodes: np.ndarray,
        trip_time_min: np.ndarray,
        trip_len_m: np.ndarray,
        depots: np.ndarray,
        depot_time_min: np.ndarray,
        depot_len_m: np.ndarray,
        shifts: ShiftPlan,
        driver_depot: np.ndarray,
        policy: "NavigationPolicy | CruisePolicy",
        slot_min: int,
        start_weekday: int,
        seed: int,
        settings: EngineSettings | None = None,
        day_congestion: np.ndarray | None = None,
        right_turn_delay: float = 1.0,
    ) -> None:
        self.net = net
        self.pax = passengers
        self.dest_nodes = dest_nodes
        self.depots = depots
        self.depot_time = depot_time_min  # (K, n)
        self.depot_len = depot_len_m  # (K, n)
        self.shifts = shifts
        self.driver_depot = driver_depot
        self.policy = policy
        self.slot_min = slot_min
        self.start_hour_of_week = start_weekday * 24
        self.draw_key = run_key(seed)
        self.s = settings or EngineSettings()
        self.turn_delay_min = turn_delay_s(net.drive_side) / 60.0
        # the scenario (experiment.sim.scenario): travel time per calendar day, right turns per window
        self.day_congestion = None if day_congestion is None else np.asarray(day_congestion, dtype=float)
        if right_turn_delay != 1.0:
            self.turn_delay_min[RIGHT if net.drive_side == "left" else LEFT] *= right_turn_delay
        self._price_trips(trip_time_min, trip_len_m)

    def _price_trips(self, trip_time_min: np.ndarray, trip_len_m: np.ndarray) -> None:
        """Every passenger's trip, at the traffic and tariff of the hour they hail: the taxi drives the
        fastest path from their corner to their destination (and on, outside the region, for long trips)."""
        pax = self.pax
        rel_hour = (pax.arrival // 60).astype(np.int64)
        hour = self.start_hour_of_week + rel_hour
        inside_min = trip_time_min[pax.dest, pax.node] * self.congestion_from_start(rel_hour)
        self.outside_min = pax.outside_km / OUTSIDE_KMH * 60.0  # each way, by expressway
        self.trip_min = inside_min + self.outside_min
        self.trip_km = trip_len_m[pax.dest, pax.node] / 1000.0 + pax.outside_km
        slow_s = inside_min * 60.0 * slow_share(hour)
        self.fare = tokyo_fare(self.trip_km * 1000.0, slow_s, is_late_night(pax.arrival % 1440))
        self.dropoff_edge = self.net.in_edge_of[self.dest_nodes[pax.dest]]

    def congestion_from_start(self, rel_hour: np.ndarray) -> np.ndarray:
        """Travel-time multiplier for hours counted from the window start (the scenario's day factor
        times the hour of week's congestion)."""
        base = congestion(self.start_hour_of_week + rel_hour)
        if self.day_congestion is None:
            return base
        day = np.minimum(np.asarray(rel_hour) // 24, self.day_congestion.size - 1)
        return base * self.day_congestion[day]

    def run(self, on_day: Callable[[int, float], bool] | None = None, n_days: int | None = None) -> SimOutput:
        """Simulate every shift (compiled loop, :func:`experiment.sim.kernels.drive_span`, one navigation
        slot per call); ``on_day(day, revenue so far)`` at each midnight before the last day may stop it."""
        net, pax, sh = self.net, self.pax, self.shifts
        n_drivers = int(self.driver_depot.size)
        n_sh = sh.n_shifts
        i64, f8 = np.int64, np.float64
        acc = {name: np.zeros(n_sh) for name in ACCUMULATORS}
        acc["t_end"] = np.full(n_sh, np.nan)
        inf = np.inf
        drv = {
            "state": np.zeros(n_drivers, dtype=np.int8), "edge": np.zeros(n_drivers, dtype=i64),
            "t": np.zeros(n_drivers), "t_vac": np.full(n_drivers, inf), "t_busy": np.full(n_drivers, inf),
            "cur": np.full(n_drivers, -1, dtype=i64), "shift_end": np.full(n_drivers, inf),
            "break_j": np.zeros(n_drivers, dtype=i64), "next_break": np.full(n_drivers, inf),
            "check_at": np.full(n_drivers, inf), "n_moves": np.zeros(n_drivers, dtype=i64),
        }
        depot_of = np.ascontiguousarray(self.driver_depot, dtype=i64)
        worst_cong = float(np.max(congestion(np.arange(168))))
        if self.day_congestion is not None:
            worst_cong *= max(float(self.day_congestion.max()), 1.0)
        home_max = self.depot_time.max(axis=1)[depot_of] * worst_cong + self.s.return_buffer_min

        p_status = np.full(pax.n, PENDING, dtype=np.int8)
        n_wait = np.zeros(net.n_nodes, dtype=np.int32)
        q_pid = np.argsort(pax.node, kind="stable").astype(i64)  # each corner's passengers, in id order
        q_ptr = np.zeros(net.n_nodes + 1, dtype=i64)
        np.cumsum(np.bincount(pax.node, minlength=net.n_nodes), out=q_ptr[1:])
        q_head = q_ptr[:-1].copy()
        exp_order = np.argsort(pax.expiry, kind="stable").astype(i64)
        n_k = ChoiceTable.K
        key = np.uint64(self.draw_key)

        horizon = int(np.ceil(np.max(sh.end))) + 24 * 60 if n_sh else 0
        bounds = np.arange(0, horizon + 2, dtype=float)
        ptrs = (
            np.searchsorted(sh.start, bounds).astype(i64),
            np.searchsorted(pax.arrival, bounds).astype(i64),
            np.searchsorted(pax.expiry[exp_order], bounds - 1.0).astype(i64),  # patience ran out before k
            self.congestion_from_start(np.arange(horizon // 60 + 2)).astype(f8),
        )
        c = np.ascontiguousarray
        const = (
            depot_of, c(home_max, f8), c(net.in_edge_of[self.depots], i64),
            c(sh.driver, i64), c(sh.start, f8), c(sh.end, f8), c(sh.breaks, f8), float(sh.break_min),
        )
        pax_args = (
            c(pax.arrival, f8), c(pax.expiry, f8), c(pax.node, i64), p_status, n_wait, q_ptr, q_pid, q_head,
            exp_order, c(self.fare, f8), c(self.trip_min, f8), c(self.trip_km, f8), c(self.outside_min, f8),
            c(pax.outside_km, f8), c(self.dropoff_edge, i64),
        )
        net_args = (
            c(net.edge_dst, i64), c(net.edge_len_m / 1000.0, f8), c(net.pair_to, i64),
            c(net.edge_time_min[net.pair_to], f8),  # free-flow minutes of the next edge
            c(self.turn_delay_min[net.pair_turn], f8),  # and the turn onto it
            c(self.depot_time, f8), c(self.depot_len, f8),
        )
        log = (np.zeros(pax.n, dtype=i64), np.zeros(pax.n, dtype=i64), np.zeros(pax.n))
        counters = np.zeros(3, dtype=i64)
        scratch = (np.zeros(n_drivers, dtype=i64), np.zeros(n_drivers, dtype=i64), np.zeros(n_drivers, dtype=np.bool_))
        settings = (n_k, float(self.s.cruise_speed_factor), float(self.s.return_buffer_min), MAX_BREAKS)

        reported = 0
        first_pair = np.ascontiguousarray(net.state_ptr[:-1], dtype=np.int32)  # as ChoiceTable.first_pair
        k, resume = 0, -1
        while k < horizon:
            slot = k // self.slot_min
            k_to = min((slot + 1) * self.slot_min, horizon)
            counts = np.ascontiguousarray(self.policy.slot_counts(slot), dtype=np.uint16)
            code, k_last, n = kernels.drive_span(
                k, k_to, resume, *settings, *drv.values(), *const, *(acc[a] for a in ACCUMULATORS),
                acc["t_end"], *pax_args, *ptrs, *net_args, counts, first_pair, key, *log, counters, *scratch,
            )
            if code == kernels.SHIFTS_OVERLAP:
                raise AssertionError("a driver's shifts overlap")
            k1 = k_last + 1
            if on_day is not None and n_days is not None and k1 % 1440 == 0:
                day = k1 // 1440 - 1
                if reported <= day < n_days - 1:  # the last day ends the run anyway
                    reported = day + 1
                    if on_day(day, float(acc["revenue"].sum())):
                        raise SimulationStopped(day)
            if code == kernels.RUN_FINISHED:
                break
            k, resume = k_to, -1
        n_log = int(counters[kernels.C_LOG])
        sid_all, pid_all, t0_all = (x[:n_log].copy() for x in log)
        return self._output(acc, p_status, sid_all, pid_all, t0_all, int(counters[kernels.C_DECISIONS]))

    def _output(self, acc: dict[str, np.ndarray], p_status: np.ndarray, sid_all: np.ndarray,
                pid_all: np.ndarray, t0_all: np.ndarray, decisions: int) -> SimOutput:
        trip_log = {
            "shift": sid_all,
            "passenger": pid_all,
            "pickup_t": t0_all,
            "dropoff_t": t0_all + self.trip_min[pid_all],
            "distance_km": self.trip_km[pid_all],
            "fare_yen": self.fare[pid_all],
        }
        return SimOutput(
            shifts=self.shifts, revenue=acc["revenue"], trips=acc["trips"], km_vacant=acc["km_vacant"],
            km_occupied=acc["km_occupied"], km_return=acc["km_return"], min_vacant=acc["min_vacant"],
            min_occupied=acc["min_occupied"], min_break=acc["min_break"], min_return=acc["min_return"],
            t_end=acc["t_end"], passenger_status=p_status, trip_log=trip_log, decisions=decisions,
        )
