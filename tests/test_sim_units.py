"""Correctness of the simulator's parts: value iteration, fares, shortest paths, turns, shifts."""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from experiment.sim.fares import is_late_night, tokyo_fare
from experiment.sim.navigation import EdgeMDP, boltzmann, value_iteration
from experiment.sim.network import LEFT, RIGHT, STRAIGHT, UTURN, classify_turns
from experiment.sim.regions import build_region
from experiment.sim.shifts import plan_shifts


# ------------------------------------------------------------------------------------------ MDP
def tiny_mdp(seed: int, n_states: int = 5, n_actions: int = 2, n_zones: int = 2):
    rng = np.random.default_rng(seed)
    pad_to = rng.integers(0, n_states, (n_actions, n_states))
    cost = rng.uniform(5, 50, (n_actions, n_states))
    zone = rng.integers(0, n_zones, n_states)
    zone[:n_zones] = np.arange(n_zones)  # every zone has an edge
    counts = np.bincount(zone, minlength=n_zones)
    zone_mean = csr_matrix((1.0 / counts[zone], (zone, np.arange(n_states))), shape=(n_zones, n_states))
    g = rng.uniform(0.1, 1.0, (n_zones, n_zones))
    mdp = EdgeMDP(
        pad_to=pad_to, pad_cost=cost, edge_zone=zone, zone_mean=zone_mean,
        gravity=g / g.sum(1, keepdims=True), trip_steps=rng.uniform(2, 10, n_zones),
    )
    p = rng.uniform(0.0, 0.6, n_states)
    fare = rng.uniform(500, 3000, n_states)
    return mdp, p, fare


def exact_values(mdp: EdgeMDP, p, fare, gamma) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: evaluate every deterministic policy with a linear solve; the optimum dominates."""
    n_a, n = mdp.pad_to.shape
    agg = mdp.gravity @ mdp.zone_mean.toarray()  # (Z, E) destination value weights
    best_v, best_pol = np.full(n, -np.inf), None
    for pol in itertools.product(range(n_a), repeat=n):
        T = np.zeros((n, n))
        r = np.zeros(n)
        for e, a in enumerate(pol):
            nxt = mdp.pad_to[a, e]
            z = mdp.edge_zone[nxt]
            T[e] += p[nxt] * gamma ** mdp.trip_steps[z] * agg[z]
            T[e, nxt] += (1 - p[nxt]) * gamma
            r[e] = p[nxt] * fare[nxt] - mdp.pad_cost[a, e]
        v = np.linalg.solve(np.eye(n) - T, r)
        if np.all(v >= best_v - 1e-9):
            best_v, best_pol = v, np.array(pol)
    return best_v, best_pol


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.97])
def test_value_iteration_equals_exact_solution(seed, gamma):
    mdp, p, fare = tiny_mdp(seed)
    v_exact, pol = exact_values(mdp, p, fare, gamma)
    v, q, iters = value_iteration(mdp, p, fare, gamma, tol=1e-11, max_iter=100_000)
    assert iters < 100_000
    np.testing.assert_allclose(v, v_exact, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(mdp.greedy(q), pol)


def test_value_iteration_is_not_trivially_right():
    """A truncated iteration is measurably off: the comparison above can fail."""
    mdp, p, fare = tiny_mdp(0)
    v_exact, _ = exact_values(mdp, p, fare, 0.97)
    v, _, _ = value_iteration(mdp, p, fare, 0.97, max_iter=3, tol=0.0)
    assert np.max(np.abs(v - v_exact)) > 1.0


def test_boltzmann_prefers_better_actions_and_ignores_padding():
    q = np.array([[10.0, 0.0], [0.0, 0.0], [-np.inf, 5.0]])
    prob = boltzmann(q, temperature=5.0)
    np.testing.assert_allclose(prob.sum(axis=0), 1.0)
    assert prob[2, 0] == 0.0
    assert prob[0, 0] > prob[1, 0]
    assert prob[2, 1] > prob[0, 1] == pytest.approx(prob[1, 1])


# ---------------------------------------------------------------------------------------- fares
@pytest.mark.parametrize(
    "metres, slow_s, late, yen",
    [
        (800, 0, False, 500),  # within the first 1.096 km
        (1096, 0, False, 500),
        (1097, 0, False, 600),  # one metre into the first 255 m step
        (1351, 0, False, 600),  # 1.096 km + 255 m
        (1352, 0, False, 700),
        (5000, 0, False, 2100),  # ceil((5000 - 1096) / 255) = 16 steps
        (5000, 94, False, 2100),  # 94 s slow: no time step yet
        (5000, 95, False, 2200),  # 1 min 35 s at <= 10 km/h: one more step
        (5000, 190, False, 2300),
        (5000, 0, True, 2520),  # 22:00-05:00: +20 %
        (1000, 0, True, 600),
    ],
)
def test_tokyo_fare_by_hand(metres, slow_s, late, yen):
    assert float(tokyo_fare(metres, slow_s, late)) == yen


@pytest.mark.parametrize(
    "minute, late", [(22 * 60, True), (22 * 60 - 1, False), (4 * 60 + 59, True), (5 * 60, False), (0, True)]
)
def test_late_night_hours(minute, late):
    assert bool(is_late_night(minute)) is late
    assert bool(is_late_night(minute + 3 * 1440)) is late  # any day


# ------------------------------------------------------------------------------ network and paths
def test_turn_types_in_a_plus_junction():
    # centre 0, arms: east 1, north 2, west 3, south 4; arriving from the south (4 -> 0)
    xy = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    a = np.array([4, 4, 4, 4])
    b = np.zeros(4, dtype=int)
    c = np.array([2, 3, 1, 4])
    np.testing.assert_array_equal(classify_turns(xy, a, b, c), [STRAIGHT, LEFT, RIGHT, UTURN])


def _dijkstra_scalar(net, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain heap Dijkstra on the reversed graph: time and length of the fastest path to ``target``."""
    inc: dict[int, list[int]] = {}
    for e in range(net.n_edges):
        inc.setdefault(int(net.edge_dst[e]), []).append(e)
    time = np.full(net.n_nodes, np.inf)
    length = np.full(net.n_nodes, np.inf)
    time[target], length[target] = 0.0, 0.0
    heap = [(0.0, 0.0, target)]
    while heap:
        t, ln, v = heapq.heappop(heap)
        if t > time[v]:
            continue
        for e in inc.get(v, []):
            u = int(net.edge_src[e])
            nt = t + net.edge_time_min[e]
            if nt < time[u] - 1e-12:
                time[u], length[u] = nt, ln + net.edge_len_m[e]
                heapq.heappush(heap, (nt, length[u], u))
    return time, length


def test_shortest_paths_match_a_scalar_dijkstra():
    net = build_region("ring_city").network
    targets = np.array([0, 17, 400, net.n_nodes - 1])
    times, lengths = net.shortest_paths_to(targets)
    for i, tg in enumerate(targets):
        t_ref, l_ref = _dijkstra_scalar(net, int(tg))
        np.testing.assert_allclose(times[i], t_ref, rtol=1e-9)
        # lengths follow the fastest path; ties in time could pick another path of equal time
        np.testing.assert_allclose(lengths[i], l_ref, rtol=1e-6)


@pytest.mark.parametrize("name", ["tokyo_central", "ring_city", "coquimbo"])
def test_regions_are_strongly_connected_and_sized(name):
    from scipy.sparse.csgraph import connected_components

    region = build_region(name)
    net = region.network
    g = csr_matrix((np.ones(net.n_edges), (net.edge_src, net.edge_dst)), shape=(net.n_nodes,) * 2)
    assert connected_components(g, directed=True, connection="strong")[0] == 1
    assert set(np.unique(net.edge_class)) == {0, 1, 2}
    assert np.all(net.edge_speed_kmh > 0) and np.all(net.edge_len_m > 0)
    if name == "tokyo_central":
        assert net.n_nodes >= 2500 and len(region.hotspots) >= 10
        assert region.drive_side == "left"
    if name == "coquimbo":
        assert net.n_nodes > 15_000 and net.n_edges > 30_000
        assert region.drive_side == "right"


# ------------------------------------------------------------------------------------------ shifts
def test_shifts_never_overlap_and_respect_working_time_rules():
    plan = plan_shifts(300, 7, 0, (0.6, 0.25, 0.15), np.random.default_rng(3))
    for d in range(300):
        mine = np.flatnonzero(plan.driver == d)
        starts, ends = plan.start[mine], plan.end[mine]
        assert np.all(starts[1:] >= ends[:-1])  # one place at a time: a shift ends before the next
    length_h = (plan.end - plan.start) / 60
    assert length_h.max() <= 22.0  # at most 22 h in two calendar days (alternate-day shifts)
    assert np.isfinite(plan.breaks).sum(axis=1).min() >= 1  # everyone gets a break
    alt = plan.kind == 0
    assert np.all(np.isfinite(plan.breaks[alt]).sum(axis=1) == 3)  # 3 h of breaks on 隔日勤務
