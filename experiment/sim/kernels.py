"""Compiled (Numba) inner loops of the simulator: the per-driver minute loop and the Bellman update.

Why compiled: the vectorised NumPy engine (:mod:`experiment.sim.engine_numpy`, kept as the reference)
pays about a hundred NumPy calls per simulated minute whatever the fleet size; a plain per-driver loop
compiled to machine code pays nothing per call. The loops here do exactly what the vectorised engine
does, in the same order and with the same floating-point expressions, so results are identical.

Compiled code is cached on disk (``cache=True``): wherever ``NUMBA_CACHE_DIR`` points, else next to this
file in ``__pycache__`` when that is writable, else in Numba's per-user cache directory
(``~/.cache/numba``), else (a read-only install run by a user without a writable home) in a per-user
directory under the system's temporary directory. :func:`warm_up` compiles (or loads) every kernel on
tiny inputs; call it before forking workers so they inherit the machine code.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def _writable(path: Path) -> bool:
    """Whether ``path`` (or, if it does not exist yet, its nearest existing parent) can be written."""
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return os.access(path, os.W_OK)


def _ensure_cache_dir() -> None:
    """Numba refuses to compile a ``cache=True`` function when none of its cache locations is writable:
    point ``NUMBA_CACHE_DIR`` at a per-user temporary directory then (before Numba reads its config)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    if _writable(Path(__file__).parent / "__pycache__") or _writable(user_cache):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"navitune-numba-{os.getuid()}")


_ensure_cache_dir()

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

# driver states and passenger states (mirrors engine.py; kept here so the kernels import nothing else)
OFF, VACANT, OCCUPIED, BREAK, RETURNING = 0, 1, 2, 3, 4
WAITING, SERVED, ABANDONED, PENDING = 0, 1, 2, 3

#: return codes of :func:`drive_span`
SPAN_DONE, RUN_FINISHED, SHIFTS_OVERLAP = 0, 1, 3

# counters shared between calls (one int64 array): (unused), trip-log length, decisions
C_LOG, C_DECISIONS = 1, 2

#: the choice tables' resolution: a decision draws j uniform in 0 .. CHOICE_K - 1 and takes the action whose
#: rounded cumulative count first exceeds j (probabilities to 1/32768; uint16 counts)
CHOICE_BITS = 15
CHOICE_K = 1 << CHOICE_BITS

# counter-based random draws (SplitMix64's finaliser over the run's key, the driver and the driver's own
# decision number): a decision's draw depends on who decides and how many decisions that driver made before,
# not on how many draws other drivers consumed, so one changed decision does not reshuffle every later one
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_ODD = np.uint64(0xD1B54A32D192ED69)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_SHIFT_K = np.uint64(64 - CHOICE_BITS)


@njit(cache=True)
def choice_draw(key, driver, n):
    """j in 0 .. CHOICE_K - 1 for the ``n``-th decision (from 0) of ``driver`` in the run keyed ``key``."""
    z = np.uint64(key) + np.uint64(driver) * _GOLD + np.uint64(n) * _ODD
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return np.int64(z >> _SHIFT_K)


def choice_draws(key: int, driver: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`choice_draw` vectorised with NumPy (uint64 arithmetic wraps modulo 2**64, as the compiled one)."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + np.asarray(driver).astype(np.uint64) * _GOLD + np.asarray(n).astype(np.uint64) * _ODD
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        z = z ^ (z >> _S31)
    return (z >> _SHIFT_K).astype(np.int64)


@njit(cache=True)
def drive_span(
    k_from, k_to, resume_n, n_k, cruise_div, buffer_min, max_breaks,
    # per driver (state, mutated)
    state, edge, t, t_vac, t_busy, cur, shift_end, break_j, next_break, check_at, n_moves,
    # per driver (constant)
    depot_of, home_max, depot_edge,
    # shifts
    sh_driver, sh_start, sh_end, sh_breaks, break_min,
    # per shift accumulators (mutated)
    revenue, trips_n, km_vac, km_occ, km_ret, min_vac, min_occ, min_brk, min_ret, t_end,
    # passengers
    arrival, expiry, pax_node, p_status, n_wait, q_ptr, q_pid, q_head, exp_order,
    fare, trip_min, trip_km, out_min, out_km, drop_edge,
    # per-minute pointers and the congestion of each hour
    start_ptr, arr_ptr, exp_ptr, cong_hour,
    # network
    edge_dst, edge_len_km, pair_to, pair_time, pair_delay, depot_time, depot_len,
    # this slot's choice counts (D-1, E), each edge's first pair, and the run's random key
    counts, first_pair, draw_key,
    # trip log (mutated), counters, scratch
    log_sid, log_pid, log_t0, counters, movers, corner, hit,
):
    """Simulate minutes ``k_from .. k_to - 1`` (one navigation slot at most), like ``Engine.run``.

    Returns ``(code, k, n)``: ``SPAN_DONE`` after minute ``k_to - 1``; ``RUN_FINISHED`` when every shift
    has ended after minute ``k``; ``SHIFTS_OVERLAP`` when a shift starts for a driver still on one. A
    decision's random entry is :func:`choice_draw` of the run's key, the driver and the driver's decisions so
    far (``n_moves``). ``resume_n`` is kept for callers that resume a pass (``movers[:resume_n]``).
    """
    n_drivers = state.shape[0]
    n_sh = sh_start.shape[0]
    n_rows = counts.shape[0]
    inf = np.inf
    for k in range(k_from, k_to):
        k1 = k + 1.0
        cong = cong_hour[k // 60]
        if resume_n < 0:
            # --- shifts that start in this minute
            for sid in range(start_ptr[k], start_ptr[k + 1]):
                d = sh_driver[sid]
                if state[d] != OFF:
                    return SHIFTS_OVERLAP, k, 0
                state[d] = VACANT
                cur[d] = sid
                t[d] = sh_start[sid]
                t_vac[d] = t[d]
                edge[d] = depot_edge[depot_of[d]]
                shift_end[d] = sh_end[sid]
                break_j[d] = 0
                next_break[d] = sh_breaks[sid, 0]
                check_at[d] = min(next_break[d], shift_end[d] - home_max[d])
            # --- passengers appearing in this minute
            for pid in range(arr_ptr[k], arr_ptr[k + 1]):
                n_wait[pax_node[pid]] += 1
                p_status[pid] = WAITING
            # --- passengers whose patience ran out before this minute
            for j in range(exp_ptr[k], exp_ptr[k + 1]):
                pid = exp_order[j]
                if p_status[pid] == WAITING:
                    p_status[pid] = ABANDONED
                    n_wait[pax_node[pid]] -= 1
            # --- occupied / break / returning drivers whose activity ends in this minute
            for d in range(n_drivers):
                if not t_busy[d] < k1:
                    continue
                t_busy[d] = inf
                st = state[d]
                if st == RETURNING:
                    state[d] = OFF
                    t_end[cur[d]] = t[d]
                    cur[d] = -1
                    continue
                state[d] = VACANT
                t_vac[d] = t[d]
                if st == BREAK:
                    break_j[d] += 1
                    nb = min(break_j[d], max_breaks - 1)
                    next_break[d] = sh_breaks[cur[d], nb] if break_j[d] < max_breaks else inf
                    check_at[d] = min(next_break[d], shift_end[d] - home_max[d])
        arrived = arr_ptr[k + 1]  # passengers with a smaller id have joined their corner's queue
        # --- vacant drivers drive edge by edge until they pass the end of this minute
        nm = 0
        first = True
        while True:
            if resume_n >= 0:
                nm = resume_n
                resume_n = -1
            else:
                # the pass's snapshot, in driver order: only last pass's movers can still be due
                n_new = 0
                if first:
                    for d in range(n_drivers):
                        if t_vac[d] < k1:
                            movers[n_new] = d
                            n_new += 1
                    first = False
                else:
                    for i in range(nm):
                        d = movers[i]
                        if t_vac[d] < k1:
                            movers[n_new] = d
                            n_new += 1
                nm = n_new
                if nm == 0:
                    break
                nm = _pickups(
                    nm, movers, corner, hit, arrived, edge, t, state, t_vac, t_busy, cur, edge_dst,
                    n_wait, q_ptr, q_pid, q_head, p_status, arrival, expiry, fare, trip_min, trip_km,
                    out_min, out_km, drop_edge, revenue, trips_n, km_occ, min_occ, km_vac, min_vac,
                    log_sid, log_pid, log_t0, counters,
                )
                if nm == 0:
                    continue
                nm = _checks(
                    nm, movers, cong, buffer_min, break_min, edge, t, state, t_vac, t_busy, cur,
                    shift_end, next_break, check_at, depot_of, depot_edge, edge_dst, depot_time,
                    depot_len, min_ret, km_ret, min_brk,
                )
                if nm == 0:
                    continue
            counters[C_DECISIONS] += nm
            speed = cong / cruise_div
            for i in range(nm):
                d = movers[i]
                e = edge[d]
                j = choice_draw(draw_key, d, n_moves[d])
                n_moves[d] += 1
                pair = first_pair[e]  # + how many of the rounded cumulative counts are <= j
                for r in range(n_rows):
                    if counts[r, e] <= j:
                        pair += 1
                nxt = pair_to[pair]
                dt = pair_time[pair] * speed + pair_delay[pair]
                sid = cur[d]
                min_vac[sid] += dt
                km_vac[sid] += edge_len_km[nxt]
                edge[d] = nxt
                t[d] = t[d] + dt
                t_vac[d] = t[d]
        if start_ptr[k + 1] >= n_sh:
            busy = False
            for d in range(n_drivers):
                if state[d] != OFF:
                    busy = True
                    break
            if not busy:
                return RUN_FINISHED, k, 0
    return SPAN_DONE, k_to - 1, 0


@njit(cache=True)
def _pickups(
    nm, movers, corner, hit, arrived, edge, t, state, t_vac, t_busy, cur, edge_dst, n_wait, q_ptr,
    q_pid, q_head, p_status, arrival, expiry, fare, trip_min, trip_km, out_min, out_km, drop_edge,
    revenue, trips_n, km_occ, min_occ, km_vac, min_vac, log_sid, log_pid, log_t0, counters,
):
    """Each mover takes the first passenger still waiting at the corner it just reached (whether anyone
    waits there is read for the whole pass first); returns how many movers are still vacant, kept in
    order at the front of ``movers``."""
    for i in range(nm):
        v = edge_dst[edge[movers[i]]]
        corner[i] = v
        hit[i] = n_wait[v] > 0
    kept = 0
    for i in range(nm):
        d = movers[i]
        if hit[i]:
            v = corner[i]
            td = t[d]
            h, end = q_head[v], q_ptr[v + 1]
            pid = -1
            while h < end:
                p = q_pid[h]
                if p >= arrived:  # not in the queue yet
                    break
                if p_status[p] != WAITING:  # served or gone already: drop the stale entry
                    h += 1
                    continue
                if expiry[p] < td:  # gave up before this driver came by
                    h += 1
                    p_status[p] = ABANDONED
                    n_wait[v] -= 1
                    continue
                if arrival[p] > td:  # not there yet
                    break
                h += 1
                p_status[p] = SERVED
                n_wait[v] -= 1
                pid = p
                break
            q_head[v] = h
            if pid >= 0:
                sid = cur[d]
                revenue[sid] += fare[pid]
                trips_n[sid] += 1
                km_occ[sid] += trip_km[pid]
                min_occ[sid] += trip_min[pid]
                km_vac[sid] += out_km[pid]  # the empty drive back from outside the region
                min_vac[sid] += out_min[pid]
                state[d] = OCCUPIED
                t[d] = td + trip_min[pid] + out_min[pid]
                t_vac[d] = np.inf
                t_busy[d] = t[d]
                edge[d] = drop_edge[pid]
                n = counters[C_LOG]
                log_sid[n] = sid
                log_pid[n] = pid
                log_t0[n] = td
                counters[C_LOG] = n + 1
                continue
        movers[kept] = d
        kept += 1
    return kept


@njit(cache=True)
def _checks(
    nm, movers, cong, buffer_min, break_min, edge, t, state, t_vac, t_busy, cur, shift_end, next_break,
    check_at, depot_of, depot_edge, edge_dst, depot_time, depot_len, min_ret, km_ret, min_brk,
):
    """The trip home when it is time, else a due break (only once ``check_at`` is reached); returns how
    many movers are still vacant, kept in order at the front of ``movers``."""
    kept = 0
    for i in range(nm):
        d = movers[i]
        td = t[d]
        if td >= check_at[d]:
            node = edge_dst[edge[d]]
            home_t = depot_time[depot_of[d], node] * cong
            sid = cur[d]
            if td + home_t + buffer_min >= shift_end[d]:
                state[d] = RETURNING
                t[d] = td + home_t
                t_vac[d] = np.inf
                t_busy[d] = t[d]
                min_ret[sid] += home_t
                km_ret[sid] += depot_len[depot_of[d], node] / 1000.0
                edge[d] = depot_edge[depot_of[d]]
                continue
            if td >= next_break[d]:
                state[d] = BREAK
                t[d] = td + break_min
                t_vac[d] = np.inf
                t_busy[d] = t[d]
                min_brk[sid] += break_min
                continue
        movers[kept] = d
        kept += 1
    return kept


@njit(cache=True)
def _edge_values(v, p, fare, gamma, disc, edge_zone, zm_ptr, zm_idx, zm_data, gravity, zm, vdest, w):
    """W(e') of ``EdgeMDP.edge_values``: ``p (F + disc * gravity @ zone_mean @ v) + (1 - p) gamma v``
    (``vdest`` receives the discounted value after a trip, per zone)."""
    n_zones = zm.shape[0]
    for z in range(n_zones):
        acc = 0.0
        for jj in range(zm_ptr[z], zm_ptr[z + 1]):
            acc += zm_data[jj] * v[zm_idx[jj]]
        zm[z] = acc
    for z in range(n_zones):
        acc = 0.0
        for y in range(n_zones):
            acc += gravity[z, y] * zm[y]
        vdest[z] = disc[z] * acc
    for e in range(w.shape[0]):
        w[e] = (vdest[edge_zone[e]] + fare[e]) * p[e] + (1.0 - p[e]) * gamma * v[e]


@njit(cache=True)
def bellman_sweeps(ptr, to, cost, edge_zone, zm_ptr, zm_idx, zm_data, gravity, disc, p, fare, gamma,
                   v, q, max_iter, tol, back_j, p_back):
    """Value iteration in place: ``v`` (E,) becomes V after up to ``max_iter`` Bellman backups (fewer once
    the sup-norm change is below ``tol`` > 0) and ``q`` the last backup's Q per (state, action) pair, the
    pairs of state e being ``ptr[e]:ptr[e + 1]`` (next edge ``to``, perceived ``cost``); returns the number
    of backups (as :func:`experiment.sim.navigation.value_iteration`). Pairs ``back_j`` lead back to the
    corner the driver has just passed (U-turns): their pick-up odds are ``p_back`` instead of the next
    edge's."""
    n_e = v.shape[0]
    w = np.empty(n_e)
    zm = np.empty(zm_ptr.shape[0] - 1)
    vdest = np.empty(zm.shape[0])
    it = 0
    for it in range(1, max_iter + 1):
        _edge_values(v, p, fare, gamma, disc, edge_zone, zm_ptr, zm_idx, zm_data, gravity, zm, vdest, w)
        for j in range(to.shape[0]):
            q[j] = w[to[j]] - cost[j]
        for i in range(back_j.shape[0]):
            j = back_j[i]
            e = to[j]
            pb = p_back[i]
            q[j] = (vdest[edge_zone[e]] + fare[e]) * pb + (1.0 - pb) * gamma * v[e] - cost[j]
        change = 0.0
        for e in range(n_e):
            best = -np.inf
            for j in range(ptr[e], ptr[e + 1]):
                best = max(best, q[j])
            change = max(change, abs(best - v[e]))
            v[e] = best  # W was computed from the old v for every edge already
        if tol > 0 and change < tol:
            break
    return it


@njit(cache=True)
def plan_solve(
    rate_s, vacant_s, late_s, step_min, max_wait_min, zone_fare, edge_dst, flow, passes,
    ptr, to, cost, edge_zone, zm_ptr, zm_idx, zm_data, gravity, disc, gamma, sweeps, temperature,
    v, q, p, fare, z, back_j, back_min, p_back,
):
    """One slot of ``Planner.plan`` up to the Boltzmann weights: pick-up odds ``p`` and fares from the
    forecast ``rate_s`` (per corner) and where the fleet's vacant taxis are (``flow``), ``sweeps``
    warm-started Bellman backups of ``v``, and ``z = (Q - max Q) / temperature`` per pair (the caller
    takes ``np.exp(z)``: NumPy's vectorised exp is several times faster than a scalar one). A pair of
    ``back_j`` returns to the corner passed ``back_min`` minutes before: customers there have waited at
    most that long (``p_back``)."""
    n_e = v.shape[0]
    passes[:] = 0.0
    for e in range(n_e):
        passes[edge_dst[e]] += flow[e]
    scale = vacant_s / step_min
    for i in range(back_j.shape[0]):  # before passes' storage is reused
        node = edge_dst[to[back_j[i]]]
        waited = min(max_wait_min, back_min[i])
        p_back[i] = -np.expm1(-(rate_s[node] / (1.0 / waited + passes[node] * scale)))
    for node in range(passes.shape[0]):  # pick-up odds per corner (reusing passes' storage)
        waiting = rate_s[node] / (1.0 / max_wait_min + passes[node] * scale)
        passes[node] = -np.expm1(-waiting)
    for e in range(n_e):
        p[e] = passes[edge_dst[e]]
        fare[e] = zone_fare[edge_zone[e]] * late_s
    bellman_sweeps(ptr, to, cost, edge_zone, zm_ptr, zm_idx, zm_data, gravity, disc, p, fare, gamma,
                   v, q, sweeps, 0.0, back_j, p_back)
    for e in range(n_e):
        top = -np.inf
        for j in range(ptr[e], ptr[e + 1]):
            top = max(top, q[j])
        for j in range(ptr[e], ptr[e + 1]):
            z[j] = (q[j] - top) / temperature


@njit(cache=True)
def plan_mix(w, compliance, cruise_prob, n_k, counts_s, ptr, to, by_action, by_action_e, p, flow,
             dropoff_share, flow_steps, moved):
    """The rest of one slot: Boltzmann probabilities from the weights ``w`` per pair (overwritten with the
    mix of navigation and habitual cruising by ``compliance``), their rounded cumulative counts
    (``counts_s``, (D-1, E); rows past a state's degree repeat its total), and ``flow`` moved
    ``flow_steps`` decisions on (taxis that pick up re-enter where trips end). ``by_action`` lists the
    pairs action by action (all first actions, then all second ones...: NumPy's order over the (D, E)
    table, so the flow sums round the same way), ``by_action_e`` their states."""
    n_rows, n_e = counts_s.shape
    for e in range(n_e):
        total = 0.0
        for j in range(ptr[e], ptr[e + 1]):
            total += w[j]
        cum = 0.0
        for a in range(n_rows + 1):
            j = ptr[e] + a
            if j < ptr[e + 1]:
                w[j] = compliance * (w[j] / total) + (1.0 - compliance) * cruise_prob[j]
                cum += w[j]
            if a < n_rows:
                counts_s[a, e] = np.uint16(cum * n_k + 0.5)
    for _ in range(flow_steps):
        moved[:] = 0.0
        for i in range(by_action.shape[0]):
            j = by_action[i]
            moved[to[j]] += w[j] * flow[by_action_e[i]]
        picked_total = 0.0
        for e in range(n_e):
            picked_total += moved[e] * p[e]
        for e in range(n_e):
            picked = moved[e] * p[e]
            flow[e] = moved[e] - picked + picked_total * dropoff_share[e]
    total = 0.0
    for e in range(n_e):
        total += flow[e]
    for e in range(n_e):
        flow[e] /= total


def warm_up_planning() -> None:
    """Compile (or load) the planning kernels on a two-edge, one-zone toy."""
    i64 = np.int64
    ptr, to = np.array([0, 2, 3], i64), np.array([1, 0, 0], i64)
    mdp = (ptr, to, np.ones(3), np.zeros(2, i64), np.array([0, 2], i64), np.array([0, 1], i64),
           np.full(2, 0.5), np.ones((1, 1)), np.full(1, 0.9))
    back = np.array([1], i64)
    bellman_sweeps(*mdp, np.full(2, 0.1), np.ones(2), 0.9, np.zeros(2), np.empty(3), 2, 0.0, back, np.full(1, 0.05))
    v, q, pp, fare, z = np.zeros(2), np.empty(3), np.empty(2), np.empty(2), np.empty(3)
    flow = np.full(2, 0.5)
    plan_solve(np.ones(2), 1.0, 1.0, 1.0, 3.0, np.ones(1), np.array([1, 0], i64), flow, np.empty(2),
               *mdp, 0.9, 2, 200.0, v, q, pp, fare, z, back, np.ones(1), np.empty(1))
    plan_mix(np.exp(z), 0.7, np.full(3, 0.5), CHOICE_K, np.zeros((1, 2), np.uint16), ptr, to, np.array([0, 2, 1], i64),
             np.array([0, 1, 0], i64), pp, flow, np.full(2, 0.5), 3, np.empty(2))


@njit(cache=True)
def tree_lengths(pred, targets, out_ptr, out_dst, out_len):
    """(T, n) length of the path from every node to each target along Dijkstra's predecessor tree
    ``pred`` (-9999 at the target and where unreachable: length 0), summed by pointer jumping exactly as
    the vectorised version did (each round adds the length of the node ``jump`` points to, then jumps
    twice as far), so the sums are rounded the same way. The hop v -> pred[v] is the edge among
    ``out_ptr[v]:out_ptr[v + 1]`` (targets ``out_dst``, lengths ``out_len``) that leads to pred[v]."""
    n_t, n = pred.shape
    length = np.empty((n_t, n))
    buf = np.empty(n)
    jump = np.empty(n, np.int64)
    nxt = np.empty(n, np.int64)
    for r in range(n_t):
        row = length[r]
        for v in range(n):
            u = pred[r, v]
            row[v] = 0.0
            if u < 0:
                jump[v] = targets[r]
                continue
            jump[v] = u
            for j in range(out_ptr[v], out_ptr[v + 1]):
                if out_dst[j] == u:
                    row[v] = out_len[j]
                    break
        while True:  # a finished row only adds the target's 0.0, so each row stops on its own
            for v in range(n):
                buf[v] = row[v] + row[jump[v]]
            same = True
            for v in range(n):
                nxt[v] = jump[jump[v]]
                if nxt[v] != jump[v]:
                    same = False
            row[:] = buf
            if same:
                break
            jump[:] = nxt
    return length


_warm = False


def warm_up() -> float:
    """Compile (or load from the cache) every kernel on tiny inputs; returns the seconds it took (0 once
    done in this process).

    Runs a one-driver, one-passenger toy through :func:`drive_span`; call before forking workers.
    """
    global _warm
    if _warm:
        return 0.0
    t0 = time.perf_counter()
    i64, f8 = np.int64, np.float64
    one_i, one_f = np.zeros(1, i64), np.zeros(1, f8)
    state = np.zeros(1, np.int8)
    ptr = np.array([0, 1, 1, 1], i64)
    drive_span(
        0, 2, -1, CHOICE_K, 0.7, 10.0, 3,
        state, one_i.copy(), one_f.copy(), np.full(1, np.inf), np.full(1, np.inf), np.full(1, -1, i64),
        np.full(1, np.inf), one_i.copy(), np.full(1, np.inf), np.full(1, np.inf), one_i.copy(),
        one_i, one_f, one_i,
        one_i, np.array([0.5]), np.array([1.5]), np.full((1, 3), np.inf), 60.0,
        *(np.zeros(1) for _ in range(9)), np.full(1, np.nan),
        np.array([0.2]), np.array([5.0]), one_i, np.zeros(1, np.int8), np.zeros(2, np.int32),
        np.array([0, 1, 1], i64), one_i, np.zeros(2, i64), one_i,
        *(np.ones(1) for _ in range(5)), one_i,
        ptr, ptr, np.zeros(4, i64), np.ones(2),
        np.array([1, 0], i64), np.ones(2), np.array([1, 0], i64), np.ones(2), np.zeros(2),
        np.ones((1, 2)), np.ones((1, 2)),
        np.zeros((1, 2), np.uint16), np.zeros(2, np.int32), np.uint64(12345),
        np.zeros(1, i64), np.zeros(1, i64), np.zeros(1), np.zeros(3, i64), np.zeros(1, i64),
        np.zeros(1, i64), np.zeros(1, np.bool_),
    )
    warm_up_planning()
    tree_lengths(np.array([[1, -9999]], i64), np.array([1], i64), np.array([0, 1, 1], i64), np.array([1], i64),
                 np.ones(1))
    _warm = True
    return time.perf_counter() - t0
