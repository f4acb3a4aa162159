"""A plain, per-driver, scalar re-implementation of :meth:`experiment.sim.engine.Engine.run`.

It is the "obviously correct" oracle the compiled loop is tested against (tests/test_engine_oracle.py), and the
baseline of the ``sim`` benchmark's ``speedup_vs_reference``: the same inputs (read from an
already-built :class:`Engine`), the same order of operations and the same floating-point expressions,
but ordinary Python loops over drivers and Python scalars / lists instead of NumPy arrays over drivers.

Order of operations in each one-minute bucket ``[k, k + 1)`` (as in ``Engine.run``):

1. shifts starting in the bucket (drivers leave their depot, vacant);
2. passengers appearing in the bucket join their corner's queue;
3. passengers whose patience ran out in ``[k - 1, k)`` and who are still waiting leave;
4. occupied / break / returning drivers whose activity ends before ``k + 1`` become vacant (or go off
   shift after the trip home);
5. passes over the vacant drivers with ``t < k + 1``, until there are none. A *pass* is a snapshot of
   those drivers in ascending index order, processed "all at once":
   a. pick-ups at the corner each one just reached (whether a corner has someone waiting is read for the
      whole snapshot before the first pick-up), in driver order;
   b. for the drivers still vacant with ``t >= check_at``: the trip home, else a due break;
   c. every driver still vacant moves one edge, its action drawn from a hash of the run's key, the
      driver and the driver's own decision number (counter-based, not one stream consumed in turn).
   A driver handled in a pass is not handled again in that pass.
6. at midnights, the progress callback.

Build the engine to compare with :func:`experiment.sim.simulate.build_engine` (as ``simulate`` does).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable

import numpy as np

from experiment.sim.engine import (
    ABANDONED,
    BREAK,
    OCCUPIED,
    OFF,
    PENDING,
    RETURNING,
    SERVED,
    VACANT,
    WAITING,
    Engine,
    SimOutput,
    SimulationStopped,
)
from experiment.sim.shifts import MAX_BREAKS
from experiment.sim.simulate import build_engine  # noqa: F401  (re-exported for the tests and the bench)
from experiment.sim.traffic import congestion

INF = math.inf
MASK64 = (1 << 64) - 1


def splitmix_draw(key: int, driver: int, n: int, bits: int = 15) -> int:
    """The ``n``-th decision's draw of ``driver`` (as :func:`experiment.sim.kernels.choice_draw`), with Python
    integers: SplitMix64's finaliser over ``key + driver * golden + n * odd`` modulo 2**64, top ``bits`` bits."""
    z = (key + driver * 0x9E3779B97F4A7C15 + n * 0xD1B54A32D192ED69) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z >> (64 - bits)


# ------------------------------------------------------------------------------------------------------
# the scalar reference loop
# ------------------------------------------------------------------------------------------------------
def run_reference(
    engine: Engine,
    on_day: Callable[[int, float], bool] | None = None,
    n_days: int | None = None,
    *,
    swap_pickup_and_checks: bool = False,
    trace: list[tuple[int, int, int, int, float, int]] | None = None,
) -> SimOutput:
    """Run ``engine``'s simulation with plain per-driver loops (the same keyed draws as ``run``).

    ``swap_pickup_and_checks=True`` deliberately does the break / trip-home checks of a pass *before* its
    pick-ups (a wrong order, used to show the oracle comparison can fail).

    ``trace``, if given, receives one ``(minute k, pass number, driver, corner, t, passenger or -1)`` per
    vacant driver reaching a corner (the pick-up step), for tests and investigations.
    """
    net, pax, sh = engine.net, engine.pax, engine.shifts
    s = engine.s
    n_drivers = int(engine.driver_depot.size)
    n_sh = sh.n_shifts

    # ---- inputs as Python scalars / lists
    sh_driver = [int(x) for x in sh.driver]
    sh_start = [float(x) for x in sh.start]
    sh_end = [float(x) for x in sh.end]
    sh_breaks = [[float(x) for x in row] for row in sh.breaks]
    break_min = float(sh.break_min)
    arrival = [float(x) for x in pax.arrival]
    expiry = [float(x) for x in pax.expiry]
    pax_node = [int(x) for x in pax.node]
    n_pax = pax.n
    fare = [float(x) for x in engine.fare]
    trip_min = [float(x) for x in engine.trip_min]
    trip_km = [float(x) for x in engine.trip_km]
    out_min = [float(x) for x in engine.outside_min]
    out_km = [float(x) for x in pax.outside_km]
    drop_edge = [int(x) for x in engine.dropoff_edge]
    edge_dst = [int(x) for x in net.edge_dst]
    edge_time = [float(x) for x in net.edge_time_min]
    edge_len_m = [float(x) for x in net.edge_len_m]
    pair_to = [int(x) for x in net.pair_to]
    pair_turn = [int(x) for x in net.pair_turn]
    turn_delay = [float(x) for x in engine.turn_delay_min]
    first_pair = [int(x) for x in net.state_ptr[:-1]]
    depot_of = [int(x) for x in engine.driver_depot]
    depot_edge = [int(net.in_edge_of[int(v)]) for v in engine.depots]
    depot_time = engine.depot_time  # (depots, nodes): read one element at a time
    depot_len = engine.depot_len
    cruise_div = s.cruise_speed_factor
    buffer_min = s.return_buffer_min
    key = int(engine.draw_key)

    worst_cong = max(float(congestion(h)) for h in range(168))
    home_max = [
        max(float(x) for x in depot_time[depot_of[d]]) * worst_cong + buffer_min for d in range(n_drivers)
    ]

    # ---- per-shift accumulators
    revenue = [0.0] * n_sh
    trips_n = [0.0] * n_sh
    km_vac = [0.0] * n_sh
    km_occ = [0.0] * n_sh
    km_ret = [0.0] * n_sh
    min_vac = [0.0] * n_sh
    min_occ = [0.0] * n_sh
    min_brk = [0.0] * n_sh
    min_ret = [0.0] * n_sh
    t_end = [math.nan] * n_sh

    # ---- per-driver state
    state = [OFF] * n_drivers
    edge = [0] * n_drivers
    t = [0.0] * n_drivers
    t_vac = [INF] * n_drivers  # next decision time of a vacant driver (inf otherwise)
    t_busy = [INF] * n_drivers  # end of the current trip / break / trip home (inf otherwise)
    cur = [-1] * n_drivers  # current shift id
    shift_end = [INF] * n_drivers
    break_j = [0] * n_drivers
    next_break = [INF] * n_drivers
    check_at = [INF] * n_drivers

    # ---- passengers
    p_status = [PENDING] * n_pax
    n_wait = [0] * net.n_nodes
    queues = [deque() for _ in range(net.n_nodes)]
    exp_order = sorted(range(n_pax), key=lambda q: expiry[q])  # stable, like argsort(kind="stable")
    log_shift: list[int] = []
    log_pax: list[int] = []
    log_t0: list[float] = []
    decisions = 0

    n_moves = [0] * n_drivers  # each driver's decisions so far: its draws are keyed by it

    if n_sh == 0:
        k0, horizon = 0, 0
    else:
        k0 = 0  # from the window start, so customers before the first shift are counted too
        horizon = math.ceil(max(sh_end)) + 24 * 60
    # pointers: everything strictly before the first bucket's lower bound is skipped
    s_ptr = sum(1 for x in sh_start if x < k0)
    a_ptr = sum(1 for x in arrival if x < k0)
    e_ptr = sum(1 for q in exp_order if expiry[q] < k0 - 1.0)
    reported = 0
    k_now, pass_no = [k0], [0]  # where the loop is (for ``trace`` only)

    # ---- the two steps of a pass before the moves (closures over the state above)
    def first_waiting(v: int, td: float) -> int:
        """The passenger a driver reaching corner ``v`` at ``td`` picks up (-1: none); stale queue
        entries and passengers who gave up before ``td`` are dropped on the way."""
        q = queues[v]
        while q:
            pid = q[0]
            if p_status[pid] != WAITING:  # served or gone already: drop the stale entry
                q.popleft()
                continue
            if expiry[pid] < td:  # gave up before this driver came by
                q.popleft()
                p_status[pid] = ABANDONED
                n_wait[v] -= 1
                continue
            if arrival[pid] > td:  # not there yet
                return -1
            q.popleft()
            p_status[pid] = SERVED
            n_wait[v] -= 1
            return pid
        return -1

    def board(d: int, pid: int, td: float) -> None:
        """Driver ``d`` picks up ``pid`` at ``td`` and drives them (and back from outside the region)."""
        sid = cur[d]
        revenue[sid] += fare[pid]
        trips_n[sid] += 1
        km_occ[sid] += trip_km[pid]
        min_occ[sid] += trip_min[pid]
        km_vac[sid] += out_km[pid]  # the empty drive back from outside the region
        min_vac[sid] += out_min[pid]
        state[d] = OCCUPIED
        t[d] = td + trip_min[pid] + out_min[pid]
        t_vac[d] = INF
        t_busy[d] = t[d]
        edge[d] = drop_edge[pid]
        log_shift.append(sid)
        log_pax.append(pid)
        log_t0.append(td)

    def pickups(movers: list[int], tm: dict[int, float], cong: float) -> None:
        """Each mover takes the first passenger still waiting at the corner it just reached."""
        # whether anyone waits at a mover's corner is read for the whole pass before any pick-up
        hit = [n_wait[edge_dst[edge[d]]] > 0 for d in movers]
        for d, h in zip(movers, hit):
            v = edge_dst[edge[d]]
            pid = first_waiting(v, tm[d]) if h else -1
            if pid >= 0:
                board(d, pid, tm[d])
            if trace is not None:
                trace.append((k_now[0], pass_no[0], d, v, tm[d], pid))

    def checks(movers: list[int], tm: dict[int, float], cong: float) -> None:
        """The trip home when it is time, else a due break (only once ``check_at`` is reached)."""
        for d in movers:
            td = tm[d]
            if not td >= check_at[d]:
                continue
            node = edge_dst[edge[d]]
            home_t = float(depot_time[depot_of[d], node]) * cong
            sid = cur[d]
            if td + home_t + buffer_min >= shift_end[d]:
                state[d] = RETURNING
                t[d] = td + home_t
                t_vac[d] = INF
                t_busy[d] = t[d]
                min_ret[sid] += home_t
                km_ret[sid] += float(depot_len[depot_of[d], node]) / 1000.0
                edge[d] = depot_edge[depot_of[d]]
            elif td >= next_break[d]:
                state[d] = BREAK
                t[d] = td + break_min
                t_vac[d] = INF
                t_busy[d] = t[d]
                min_brk[sid] += break_min

    for k in range(k0, horizon):
        k1 = k + 1.0
        k_now[0], pass_no[0] = k, 0

        # --- 1. shifts that start in this minute
        while s_ptr < n_sh and sh_start[s_ptr] < k1:
            sid = s_ptr
            s_ptr += 1
            d = sh_driver[sid]
            assert state[d] == OFF, "a driver's shifts overlap"
            state[d] = VACANT
            cur[d] = sid
            t[d] = sh_start[sid]
            t_vac[d] = t[d]
            edge[d] = depot_edge[depot_of[d]]
            shift_end[d] = sh_end[sid]
            break_j[d] = 0
            next_break[d] = sh_breaks[sid][0]
            check_at[d] = min(next_break[d], shift_end[d] - home_max[d])

        # --- 2. passengers appearing in this minute
        while a_ptr < n_pax and arrival[a_ptr] < k1:
            pid = a_ptr
            a_ptr += 1
            queues[pax_node[pid]].append(pid)
            n_wait[pax_node[pid]] += 1
            p_status[pid] = WAITING

        # --- 3. passengers whose patience ran out before this minute (expiry in [k - 1, k))
        while e_ptr < n_pax and expiry[exp_order[e_ptr]] < k1 - 1.0:
            pid = exp_order[e_ptr]
            e_ptr += 1
            if p_status[pid] == WAITING:
                p_status[pid] = ABANDONED
                n_wait[pax_node[pid]] -= 1

        # --- 4. occupied / break / returning drivers whose activity ends in this minute
        for d in range(n_drivers):
            if not t_busy[d] < k1:
                continue
            t_busy[d] = INF
            if state[d] == RETURNING:
                state[d] = OFF
                t_end[cur[d]] = t[d]
                cur[d] = -1
                continue
            was_break = state[d] == BREAK
            state[d] = VACANT
            t_vac[d] = t[d]
            if was_break:
                break_j[d] += 1
                if break_j[d] < MAX_BREAKS:
                    next_break[d] = sh_breaks[cur[d]][break_j[d]]
                else:
                    next_break[d] = INF
                check_at[d] = min(next_break[d], shift_end[d] - home_max[d])

        cong = float(congestion(engine.start_hour_of_week + k // 60))
        counts = engine.policy.slot_counts(k // engine.slot_min)  # (D-1, E) rounded cumulative counts

        # --- 5. vacant drivers drive edge by edge until they pass the end of this minute
        while True:
            movers = [d for d in range(n_drivers) if t_vac[d] < k1]
            if not movers:
                break
            tm = {d: t[d] for d in movers}  # each mover's time at the start of the pass
            pass_no[0] += 1
            steps = (checks, pickups) if swap_pickup_and_checks else (pickups, checks)
            for step in steps:
                step(movers, tm, cong)
                movers = [d for d in movers if state[d] == VACANT]
            # moves, in driver order, each with its own draw (keyed by the driver and its decision number)
            decisions += len(movers)
            for d in movers:
                j = splitmix_draw(key, d, n_moves[d])
                n_moves[d] += 1
                e = edge[d]
                pair = first_pair[e] + sum(1 for r in range(counts.shape[0]) if int(counts[r, e]) <= j)
                nxt = pair_to[pair]
                dt = edge_time[nxt] * (cong / cruise_div) + turn_delay[pair_turn[pair]]
                sid = cur[d]
                min_vac[sid] += dt
                km_vac[sid] += edge_len_m[nxt] / 1000.0
                edge[d] = nxt
                t[d] = tm[d] + dt
                t_vac[d] = t[d]

        # --- 6. day boundary: report progress (pruning hook)
        if on_day is not None and n_days is not None and k1 % 1440 == 0:
            day = int(k1 // 1440) - 1
            if reported <= day < n_days - 1:
                reported = day + 1
                if on_day(day, float(np.array(revenue).sum())):  # NumPy's summation, as in run
                    raise SimulationStopped(day)
        if s_ptr >= n_sh and all(x == OFF for x in state):
            break

    t0_all = np.array(log_t0, dtype=float)
    pid_all = np.array(log_pax, dtype=np.int64)
    trip_log = {
        "shift": np.array(log_shift, dtype=np.int64),
        "passenger": pid_all,
        "pickup_t": t0_all,
        "dropoff_t": np.array([t0 + trip_min[pid] for t0, pid in zip(log_t0, log_pax)], dtype=float),
        "distance_km": np.array([trip_km[pid] for pid in log_pax], dtype=float),
        "fare_yen": np.array([fare[pid] for pid in log_pax], dtype=float),
    }
    return SimOutput(
        shifts=sh,
        revenue=np.array(revenue, dtype=float),
        trips=np.array(trips_n, dtype=float),
        km_vacant=np.array(km_vac, dtype=float),
        km_occupied=np.array(km_occ, dtype=float),
        km_return=np.array(km_ret, dtype=float),
        min_vacant=np.array(min_vac, dtype=float),
        min_occupied=np.array(min_occ, dtype=float),
        min_break=np.array(min_brk, dtype=float),
        min_return=np.array(min_ret, dtype=float),
        t_end=np.array(t_end, dtype=float),
        passenger_status=np.array(p_status, dtype=np.int8),
        trip_log=trip_log,
        decisions=decisions,
    )
