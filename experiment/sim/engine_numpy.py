"""The vectorised NumPy engine: the simulator's loop before it was compiled, kept as a reference.

:class:`NumpyEngine` runs the same model as :class:`experiment.sim.engine.Engine` with NumPy calls
vectorised over drivers (about a hundred per simulated minute whatever the fleet). Its results are
identical to the compiled engine's for the same inputs (``tests/test_sim_numba.py``); the benchmark runs
both side by side (``python -m experiment.bench sim``).
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from .engine import (
    ABANDONED, BREAK, OCCUPIED, OFF, PENDING, RETURNING, SERVED, VACANT, WAITING,
    Engine, SimOutput, SimulationStopped,
)
from .kernels import choice_draws
from .shifts import MAX_BREAKS
from .traffic import congestion


class NumpyEngine(Engine):
    """:class:`Engine` with the vectorised NumPy loop in place of the compiled one.

    ``move_log``: set it to a list before :meth:`run` and every move is appended to it as (drivers, pairs
    taken, times of the decisions) arrays (:mod:`experiment.sim.diagnostics`)."""

    move_log: list | None = None

    def run(self, on_day: Callable[[int, float], bool] | None = None, n_days: int | None = None) -> SimOutput:
        net, pax, sh = self.net, self.pax, self.shifts
        n_drivers = int(self.driver_depot.size)
        n_sh = sh.n_shifts
        revenue, trips_n = np.zeros(n_sh), np.zeros(n_sh)
        km_vac, km_occ, km_ret = np.zeros(n_sh), np.zeros(n_sh), np.zeros(n_sh)
        min_vac, min_occ, min_brk, min_ret = np.zeros(n_sh), np.zeros(n_sh), np.zeros(n_sh), np.zeros(n_sh)
        t_end = np.full(n_sh, np.nan)
        state = np.zeros(n_drivers, dtype=np.int8)
        edge = np.zeros(n_drivers, dtype=np.int64)
        t = np.zeros(n_drivers)
        inf = np.inf
        t_vac = np.full(n_drivers, inf)  # next decision time of vacant drivers (inf otherwise)
        t_busy = np.full(n_drivers, inf)  # end of the current trip / break / trip home (inf otherwise)
        cur = np.full(n_drivers, -1, dtype=np.int64)
        shift_end = np.full(n_drivers, np.inf)
        break_j = np.zeros(n_drivers, dtype=np.int64)
        next_break = np.full(n_drivers, np.inf)
        check_at = np.full(n_drivers, np.inf)  # before this time no break or trip home is due
        depot_of = self.driver_depot
        depot_edge = net.in_edge_of[self.depots]
        worst_cong = float(np.max(congestion(np.arange(168))))
        home_max = self.depot_time.max(axis=1)[depot_of] * worst_cong + self.s.return_buffer_min

        p_status = np.full(pax.n, PENDING, dtype=np.int8)
        n_wait = np.zeros(net.n_nodes, dtype=np.int32)
        queues = [deque() for _ in range(net.n_nodes)]
        exp_order = np.argsort(pax.expiry, kind="stable")
        log: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        decisions = 0
        edge_len_km = net.edge_len_m / 1000.0
        edge_dst = net.edge_dst
        cruise_div = self.s.cruise_speed_factor
        nav = self.policy
        pair_to = net.pair_to
        pair_time = net.edge_time_min[pair_to]  # free-flow minutes of the next edge
        pair_delay = self.turn_delay_min[net.pair_turn]  # and the turn onto it
        fare, trip_min, trip_km = self.fare, self.trip_min, self.trip_km
        out_min, out_km, drop_edge = self.outside_min, self.pax.outside_km, self.dropoff_edge
        arrival, expiry = pax.arrival, pax.expiry
        key = self.draw_key
        n_moves = np.zeros(n_drivers, dtype=np.int64)  # each driver's decisions so far (keys its draws)
        first_pair = net.state_ptr[:-1]

        # from the window start (customers who hail before the first shift are counted, and give up)
        k0 = 0
        horizon = int(np.ceil(np.max(sh.end))) + 24 * 60 if n_sh else 0
        bounds = np.arange(k0, horizon + 2, dtype=float)
        start_ptr = np.searchsorted(sh.start, bounds)
        arr_ptr = np.searchsorted(arrival, bounds)
        exp_ptr = np.searchsorted(expiry[exp_order], bounds - 1.0)  # patience ran out before minute k
        cong_hour = congestion(self.start_hour_of_week + np.arange(horizon // 60 + 2))
        reported = 0
        slot, counts = -1, np.empty((0, 0), dtype=np.uint16)
        move_log = self.move_log  # diagnostics: (drivers, pairs, times) of every move, when a list

        for i, k in enumerate(range(k0, horizon)):
            k1 = k + 1.0
            # --- shifts that start in this minute
            s0, s1 = start_ptr[i], start_ptr[i + 1]
            if s1 > s0:
                ids = np.arange(s0, s1)
                d = sh.driver[ids]
                assert np.all(state[d] == OFF), "a driver's shifts overlap"
                state[d] = VACANT
                cur[d] = ids
                t[d] = sh.start[ids]
                t_vac[d] = t[d]
                edge[d] = depot_edge[depot_of[d]]
                shift_end[d] = sh.end[ids]
                break_j[d] = 0
                next_break[d] = sh.breaks[ids, 0]
                check_at[d] = np.minimum(next_break[d], shift_end[d] - home_max[d])
            # --- passengers appearing in this minute
            a0, a1 = arr_ptr[i], arr_ptr[i + 1]
            if a1 > a0:
                for pid, v in zip(range(a0, a1), pax.node[a0:a1].tolist()):
                    queues[v].append(pid)
                np.add.at(n_wait, pax.node[a0:a1], 1)
                p_status[a0:a1] = WAITING
            # --- passengers whose patience ran out before this minute
            e0, e1 = exp_ptr[i], exp_ptr[i + 1]
            if e1 > e0:
                gone = exp_order[e0:e1]
                gone = gone[p_status[gone] == WAITING]
                p_status[gone] = ABANDONED
                np.subtract.at(n_wait, pax.node[gone], 1)
            # --- occupied / break / returning drivers whose activity ends in this minute
            busy = np.flatnonzero(t_busy < k1)
            if busy.size:
                st = state[busy]
                t_busy[busy] = inf
                ret = busy[st == RETURNING]
                if ret.size:
                    state[ret] = OFF
                    t_end[cur[ret]] = t[ret]
                    cur[ret] = -1
                back = busy[st != RETURNING]
                state[back] = VACANT
                t_vac[back] = t[back]
                brk = busy[st == BREAK]
                if brk.size:
                    break_j[brk] += 1
                    nb = np.minimum(break_j[brk], MAX_BREAKS - 1)
                    next_break[brk] = np.where(break_j[brk] < MAX_BREAKS, sh.breaks[cur[brk], nb], np.inf)
                    check_at[brk] = np.minimum(next_break[brk], shift_end[brk] - home_max[brk])
            cong = cong_hour[k // 60]
            if k // self.slot_min != slot:
                slot = k // self.slot_min
                counts = nav.slot_counts(slot)
            # --- vacant drivers drive edge by edge until they pass the end of this minute
            while True:
                m = np.flatnonzero(t_vac < k1)
                if m.size == 0:
                    break
                e = edge[m]
                tm = t[m]
                corner = edge_dst[e]
                # pick-ups: the first passenger still waiting at the corner just reached
                hit = n_wait[corner] > 0
                if hit.any():
                    got_d, got_p = [], []
                    for drv, v, td in zip(m[hit].tolist(), corner[hit].tolist(), tm[hit].tolist()):
                        q = queues[v]
                        while q:
                            pid = q[0]
                            if p_status[pid] != WAITING:
                                q.popleft()
                                continue
                            if expiry[pid] < td:  # gave up before this driver came by
                                q.popleft()
                                p_status[pid] = ABANDONED
                                n_wait[v] -= 1
                                continue
                            if arrival[pid] > td:  # not there yet
                                break
                            q.popleft()
                            p_status[pid] = SERVED
                            n_wait[v] -= 1
                            got_d.append(drv)
                            got_p.append(pid)
                            break
                    if got_d:
                        gd = np.array(got_d)
                        gp = np.array(got_p)
                        sid = cur[gd]
                        t0 = t[gd]
                        revenue[sid] += fare[gp]
                        trips_n[sid] += 1
                        km_occ[sid] += trip_km[gp]
                        min_occ[sid] += trip_min[gp]
                        km_vac[sid] += out_km[gp]  # the empty drive back from outside the region
                        min_vac[sid] += out_min[gp]
                        state[gd] = OCCUPIED
                        t[gd] = t0 + trip_min[gp] + out_min[gp]
                        t_vac[gd] = inf
                        t_busy[gd] = t[gd]
                        edge[gd] = drop_edge[gp]
                        log.append((sid, gp, t0))
                        still = state[m] == VACANT
                        m, e, tm = m[still], e[still], tm[still]
                        if m.size == 0:
                            continue
                # breaks and the trip home, for the few drivers for whom one may be due
                due = tm >= check_at[m]
                if due.any():
                    dm, dtm = m[due], tm[due]
                    node = edge_dst[edge[dm]]
                    home_t = self.depot_time[depot_of[dm], node] * cong
                    going = dtm + home_t + self.s.return_buffer_min >= shift_end[dm]
                    g = dm[going]
                    if g.size:
                        state[g] = RETURNING
                        t[g] = dtm[going] + home_t[going]
                        t_vac[g] = inf
                        t_busy[g] = t[g]
                        min_ret[cur[g]] += home_t[going]
                        km_ret[cur[g]] += self.depot_len[depot_of[g], node[going]] / 1000.0
                        edge[g] = depot_edge[depot_of[g]]
                    rest = ~going & (dtm >= next_break[dm])
                    b = dm[rest]
                    if b.size:
                        state[b] = BREAK
                        t[b] = dtm[rest] + sh.break_min
                        t_vac[b] = inf
                        t_busy[b] = t[b]
                        min_brk[cur[b]] += sh.break_min
                    if g.size or b.size:
                        keep = state[m] == VACANT
                        m, e, tm = m[keep], e[keep], tm[keep]
                        if m.size == 0:
                            continue
                decisions += m.size
                j = choice_draws(key, m, n_moves[m])
                n_moves[m] += 1
                pair = first_pair[e] + (counts[:, e] <= j[None, :]).sum(axis=0)
                if move_log is not None:
                    move_log.append((m.copy(), pair.astype(np.int64), tm.copy()))
                nxt = pair_to[pair]
                dt = pair_time[pair] * (cong / cruise_div) + pair_delay[pair]
                sid = cur[m]
                min_vac[sid] += dt
                km_vac[sid] += edge_len_km[nxt]
                edge[m] = nxt
                t[m] = tm + dt
                t_vac[m] = t[m]
            # --- day boundary: report progress (pruning hook)
            if on_day is not None and n_days is not None and k1 % 1440 == 0:
                day = int(k1 // 1440) - 1
                if reported <= day < n_days - 1:  # the last day ends the run anyway
                    reported = day + 1
                    if on_day(day, float(revenue.sum())):
                        raise SimulationStopped(day)
            if s1 >= n_sh and not state.any():
                break
        if log:
            sid_all, pid_all, t0_all = (np.concatenate(c) for c in zip(*log))
        else:
            sid_all = pid_all = np.zeros(0, dtype=np.int64)
            t0_all = np.zeros(0)
        trip_log = {
            "shift": sid_all,
            "passenger": pid_all,
            "pickup_t": t0_all,
            "dropoff_t": t0_all + trip_min[pid_all],
            "distance_km": trip_km[pid_all],
            "fare_yen": fare[pid_all],
        }
        return SimOutput(
            shifts=sh, revenue=revenue, trips=trips_n, km_vacant=km_vac, km_occupied=km_occ,
            km_return=km_ret, min_vacant=min_vac, min_occupied=min_occ, min_break=min_brk,
            min_return=min_ret, t_end=t_end, passenger_status=p_status, trip_log=trip_log,
            decisions=decisions,
        )
