"""The customer-search navigation: an MDP over (edge, time slot) solved by value iteration.

A vacant driver at the head of edge e chooses the next edge e'. Driving e' costs perceived time
(free-flow minutes scaled by the road-class weight, plus a base turn time scaled by the turn-type
weight). On e' the driver meets a waiting street-hail customer with probability
``p = 1 - exp(-rate_forecast * max_wait_min)`` (the expected number waiting is arrival rate x how long
customers are assumed to wait). A pick-up earns the expected fare from that zone and continues, after
the trip, from the gravity-weighted value of the destination zones. Otherwise the driver continues
from e'. With discount ``gamma`` per decision:

    Q(e, e') = p (F + gamma**trip_steps * Vdest(zone)) + (1 - p) gamma V(e') - cost(e, e')
    V(e)     = max_e' Q(e, e')

Per-edge terms are computed once per sweep and gathered onto the (edge, next edge) pairs; the
zone-mean and gravity steps are sparse / small dense products. Each 30-minute slot is solved with that
slot's forecast, warm-started from the previous slot's values with a fixed budget of sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.sparse import csr_matrix

from . import kernels
from .fares import is_late_night, LATE_NIGHT_FACTOR
from .network import LEFT, RIGHT, ROAD_CLASSES, STRAIGHT, TURN_TYPES, UTURN, Network

#: minutes a U-turn itself takes, as the navigation counts the time since the driver passed the corner a
#: U-turn leads back to (traffic.TURN_DELAY_S_LEFT_HAND's U-turn)
BACK_TURN_MIN = 0.75

#: Habitual cruising (left-hand traffic): relative odds of each turn type and of each road class. A driver's
#: habit keeps to the roads where hails have stood over the years: the class odds are the hail densities per
#: km of regions.CLASS_HAIL_DENSITY (arterial 1.6, collector 1.0, back street 0.15). Issue 19: they were 1.2,
#: 1.1, 0.9, so a "habit-driven" driver turned into a back street at nearly every other corner, a random walk
#: in all but name; the navigation then earned +37 % over it (with back streets x16), beyond the published
#: +8.4 % (vs local hot spot) ... +23 % (vs random walk). Now +15 % (docs/simulator.md).
HABIT_TURN = np.array([0.3, 0.4, 0.3, 0.0])  # left, straight, right, U-turn
HABIT_CLASS = np.array([1.6, 1.0, 0.15])  # arterial, collector, local


@dataclass(frozen=True)
class NavigationParams:
    """The tuned hyper-parameters of the navigation (plain values)."""

    gamma: float
    max_wait_min: float
    class_weights: tuple[float, float, float]  # arterial, collector, local
    turn_weights: tuple[float, float, float, float]  # left, straight, right, uturn
    cost_yen_per_min: float = 40.0
    turn_base_min: float = 1.0
    temperature_yen: float = 200.0
    compliance: float = 0.7  # share of decisions where a vacant driver follows the navigation

    @classmethod
    def from_road_weights(cls, gamma: float, max_wait_min: float, road_weights: dict[str, float], **kw) -> "NavigationParams":
        w = {k: 1.0 for k in ROAD_CLASSES + TURN_TYPES} | dict(road_weights)
        return cls(
            gamma=gamma,
            max_wait_min=max_wait_min,
            class_weights=tuple(float(w[c]) for c in ROAD_CLASSES),
            turn_weights=tuple(float(w[t]) for t in TURN_TYPES),
            **kw,
        )


def _weight_slot(name: str) -> tuple[str, int] | None:
    """(``turn_weights`` or ``class_weights``, index) of a road weight named ``left`` / ``road_weights.left``."""
    key = name.removeprefix("road_weights.")
    if key in TURN_TYPES:
        return "turn_weights", TURN_TYPES.index(key)
    if key in ROAD_CLASSES:
        return "class_weights", ROAD_CLASSES.index(key)
    return None


def setting(params: NavigationParams, name: str) -> float:
    """One setting by name: a field (``gamma``, ``max_wait_min``, ...) or a road weight (``right`` or
    ``road_weights.right``): the one lookup the 1-D scans and the diagnostics share."""
    slot = _weight_slot(name)
    if slot is None:
        return float(getattr(params, name))
    return float(getattr(params, slot[0])[slot[1]])


def with_setting(params: NavigationParams, name: str, value: float) -> NavigationParams:
    """``params`` with one setting (named as :func:`setting`) changed."""
    slot = _weight_slot(name)
    if slot is None:
        return replace(params, **{name: value})
    weights = list(getattr(params, slot[0]))
    weights[slot[1]] = value
    return replace(params, **{slot[0]: tuple(weights)})


@dataclass
class EdgeMDP:
    """Structure shared by every slot: pairs, perceived costs, zone aggregation, gravity, trip discounts."""

    pad_to: np.ndarray  # (D, E) next edge of each state's k-th action (padded by repeating the last)
    pad_cost: np.ndarray  # (D, E) perceived cost of each action (yen); +inf on padding
    edge_zone: np.ndarray  # (E,)
    zone_mean: csr_matrix  # (Z, E) mean over the edges of each zone
    gravity: np.ndarray  # (Z, Z) P(destination zone | origin zone)
    trip_steps: np.ndarray  # (Z,) expected decisions a trip from zone z lasts

    @classmethod
    def padded(cls, state_ptr: np.ndarray, pair_to: np.ndarray, cost: np.ndarray, **kw) -> "EdgeMDP":
        """Lay the flat (state, action) pairs out as a (max degree, E) table (reductions run over the
        short first axis, which NumPy vectorises across the long one)."""
        deg = np.diff(state_ptr)
        k = np.arange(int(deg.max()))[:, None]
        idx = np.minimum(state_ptr[:-1][None, :] + k, state_ptr[1:][None, :] - 1)
        valid = k < deg[None, :]
        return cls(pad_to=pair_to[idx], pad_cost=np.where(valid, cost[idx], np.inf), **kw)

    @property
    def n_states(self) -> int:
        return int(self.pad_to.shape[1])

    def after_trip(self, v: np.ndarray, gamma: float) -> np.ndarray:
        """(Z,) the discounted value after a trip from each zone (gravity-weighted destination zones)."""
        return gamma ** self.trip_steps * (self.gravity @ (self.zone_mean @ v))

    def edge_values(self, v: np.ndarray, p: np.ndarray, fare: np.ndarray, gamma: float) -> np.ndarray:
        """W(e'): value of committing to edge e' before paying its cost."""
        after_trip = self.after_trip(v, gamma)[self.edge_zone]
        after_trip += fare
        after_trip *= p
        return after_trip + (1.0 - p) * gamma * v

    def bellman(
        self, v: np.ndarray, p: np.ndarray, fare: np.ndarray, gamma: float,
        back: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One Bellman backup: (Q per (state, k-th action), new V per state). ``back`` = (positions in the
        flattened (D, E) table, pick-up odds): actions that lead back to the corner just passed, whose odds
        replace the next edge's."""
        q = np.take(self.edge_values(v, p, fare, gamma), self.pad_to)
        q -= self.pad_cost
        if back is not None and back[0].size:
            pos, pb = back
            e = self.pad_to.ravel()[pos]
            qb = self.after_trip(v, gamma)[self.edge_zone[e]]
            qb += fare[e]
            qb *= pb
            q.ravel()[pos] = qb + (1.0 - pb) * gamma * v[e] - self.pad_cost.ravel()[pos]
        return q, q.max(axis=0)

    def flat_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (state, action) pairs without padding: (pairs of state e start at ``ptr[e]``, next edge,
        cost, index into the flattened (D, E) table); padding is what costs +inf (the last entries of a
        column, as :meth:`padded` lays them out)."""
        valid = np.isfinite(self.pad_cost)
        deg = valid.sum(axis=0)
        ptr = np.zeros(deg.size + 1, dtype=np.int64)
        np.cumsum(deg, out=ptr[1:])
        e, a = np.nonzero(valid.T)  # state-major, actions in order (padding comes last in a column)
        flat = a * self.pad_to.shape[1] + e  # where pair (a, e) sits in the row-major (D, E) table
        return ptr, self.pad_to.T[valid.T].astype(np.int64), self.pad_cost.T[valid.T].astype(float), flat

    def kernel_args(self, gamma: float) -> tuple:
        """The MDP as the compiled Bellman update takes it: flat pairs (``ptr``, next edge, cost), the zone
        mean as CSR arrays, the gravity matrix and ``gamma ** trip_steps`` per zone."""
        ptr, to, cost, _ = self.flat_pairs()
        zm = self.zone_mean.tocsr()
        i64, f8, c = np.int64, np.float64, np.ascontiguousarray
        return (
            c(ptr, i64), c(to, i64), c(cost, f8), c(self.edge_zone, i64), c(zm.indptr, i64),
            c(zm.indices, i64), c(zm.data, f8), c(self.gravity, f8), c(gamma ** self.trip_steps, f8),
        )

    def greedy(self, q: np.ndarray) -> np.ndarray:
        """k (action slot) of the first best action of every state."""
        return q.argmax(axis=0)


def value_iteration(
    mdp: EdgeMDP,
    p: np.ndarray,
    fare: np.ndarray,
    gamma: float,
    v0: np.ndarray | None = None,
    max_iter: int = 10_000,
    tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Iterate Bellman backups from ``v0`` until the sup-norm change is below ``tol`` or ``max_iter``.

    Returns (V, Q, iterations).
    """
    v = np.zeros(mdp.n_states) if v0 is None else v0.astype(float, copy=True)
    args = mdp.kernel_args(gamma)
    q_flat = np.empty(args[1].size)
    it = kernels.bellman_sweeps(*args, np.ascontiguousarray(p, float), np.ascontiguousarray(fare, float),
                                float(gamma), v, q_flat, int(max_iter), float(tol), np.zeros(0, np.int64),
                                np.zeros(0))
    q = np.full(mdp.pad_to.shape, -np.inf)  # padding: no action
    q.ravel()[mdp.flat_pairs()[3]] = q_flat
    return v, q, int(it)


def value_iteration_numpy(
    mdp: EdgeMDP,
    p: np.ndarray,
    fare: np.ndarray,
    gamma: float,
    v0: np.ndarray | None = None,
    max_iter: int = 10_000,
    tol: float = 1e-9,
    back: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`value_iteration` with NumPy Bellman backups (the reference the compiled one is tested
    against); ``back`` as :meth:`EdgeMDP.bellman`."""
    v = np.zeros(mdp.n_states) if v0 is None else v0.astype(float, copy=True)
    q = np.empty(0)
    it = 0
    for it in range(1, max_iter + 1):
        q, v_new = mdp.bellman(v, p, fare, gamma, back)
        done = tol > 0 and np.max(np.abs(v_new - v)) < tol
        v = v_new
        if done:
            break
    return v, q, it


class Planner:
    """Builds the navigation table next_edge[slot, edge] from a demand forecast."""

    def __init__(
        self,
        net: Network,
        params: NavigationParams,
        zone_fare_yen: np.ndarray,
        gravity: np.ndarray,
        zone_trip_min: np.ndarray,
        sweeps_per_slot: int = 4,
        initial_sweeps: int = 60,
    ) -> None:
        self.net = net
        self.params = params
        self.zone_fare = zone_fare_yen
        self.sweeps_per_slot = sweeps_per_slot
        self.initial_sweeps = initial_sweeps
        cw = np.asarray(params.class_weights)[net.edge_class[net.pair_to]]
        tw = np.asarray(params.turn_weights)[net.pair_turn]
        perceived = net.edge_time_min[net.pair_to] * cw + params.turn_base_min * tw
        counts = np.bincount(net.edge_zone, minlength=net.n_zones).astype(float)
        zone_mean = csr_matrix(
            (1.0 / np.maximum(counts[net.edge_zone], 1.0), (net.edge_zone, np.arange(net.n_edges))),
            shape=(net.n_zones, net.n_edges),
        )
        step_min = float(np.mean(net.edge_time_min))
        self.step_min = step_min
        # where trips end: gravity-weighted destination zones, spread over their edges
        dest_zone_share = gravity.mean(axis=0)
        self.dropoff_share = dest_zone_share[net.edge_zone] / np.maximum(counts[net.edge_zone], 1.0)
        self.dropoff_share /= self.dropoff_share.sum()
        self.mdp = EdgeMDP.padded(
            net.state_ptr,
            net.pair_to,
            params.cost_yen_per_min * perceived,
            edge_zone=net.edge_zone,
            zone_mean=zone_mean,
            gravity=gravity,
            trip_steps=zone_trip_min / step_min,
        )
        # U-turns lead back to the corner the driver passed a moment ago and found nobody at: only the
        # customers who came since (about the edge's time and the turn's) can wait there (issue 19; without
        # this the navigation believed a corner refills at once and sent taxis back and forth)
        back = net.edge_dst[net.pair_to] == net.edge_src[net.pair_from]
        self.back_j = np.flatnonzero(back).astype(np.int64)
        self.back_min = (net.edge_time_min[net.pair_from[self.back_j]] + BACK_TURN_MIN).astype(float)
        self.back_pos = self.mdp.flat_pairs()[3][self.back_j]  # their places in the (D, E) table

    def slot_inputs(
        self, rate: np.ndarray, slot_minute_of_day: float, rival_passes: np.ndarray | float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pick-up probability and expected fare per edge for one slot's forecast rate per corner.

        Customers arrive at corner v at ``rate[v]`` per minute, give up after ``max_wait_min`` on
        average and are taken by the other vacant taxis passing v (``rival_passes[v]`` per minute), so
        ``rate / (1 / max_wait_min + rival_passes)`` are expected to be waiting when a taxi comes by.
        """
        waiting = rate.astype(float) / (1.0 / self.params.max_wait_min + rival_passes)
        p = -np.expm1(-waiting)[self.net.edge_dst]
        late = LATE_NIGHT_FACTOR if is_late_night(slot_minute_of_day) else 1.0
        return p, (self.zone_fare * late)[self.net.edge_zone]

    def back_odds(self, rate: np.ndarray, rival_passes: np.ndarray | float = 0.0) -> np.ndarray:
        """Pick-up odds of each U-turn back to the corner just passed: customers there waited at most
        ``back_min`` (the time since the pass), not ``max_wait_min``."""
        node = self.net.edge_dst[self.net.pair_to[self.back_j]]
        waited = np.minimum(self.params.max_wait_min, self.back_min)
        passes = rival_passes[node] if isinstance(rival_passes, np.ndarray) else rival_passes
        return -np.expm1(-(rate.astype(float)[node] / (1.0 / waited + passes)))

    def _plan_inputs(
        self, forecast: np.ndarray, slot_min: int, vacant_taxis: np.ndarray | None, background: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, "ChoiceTable", np.ndarray]:
        """What both planners start from: the forecast blended with the history (see :meth:`plan`), the vacant
        taxis per slot, the choice table and the empty (slots x choices x edges) counts to fill."""
        if background is not None:
            near = 1.0 - self.params.gamma ** (slot_min / self.step_min)
            forecast = near * forecast + (1.0 - near) * background
        n_slots = forecast.shape[1]
        vacant = np.zeros(n_slots) if vacant_taxis is None else np.asarray(vacant_taxis, dtype=float)
        choices = ChoiceTable(self.net, self.params.compliance)
        counts = np.empty((n_slots, choices.max_deg - 1, self.net.n_edges), dtype=np.uint16)
        return forecast, vacant, choices, counts

    def plan(
        self,
        forecast: np.ndarray,
        slot_min: int,
        vacant_taxis: np.ndarray | None = None,
        background: np.ndarray | None = None,
    ) -> "NavigationPolicy":
        """Solve each slot's MDP from the demand the navigation believes in at that time (compiled: one
        call of :func:`experiment.sim.kernels.plan_solve / kernels.plan_mix`; :meth:`plan_numpy` is the same in NumPy).

        The navigation is recomputed every slot, as a deployed one is: slot s is warm-started from slot
        s - 1's values and given a fixed budget of sweeps. ``forecast`` (nodes x slots) is known for the
        coming slot only; beyond it the navigation knows only ``background`` (the historical mean). The
        slot's MDP is stationary, so it plans with the blend that weights the forecast by the share of
        discounted reward collected within the slot, ``1 - gamma ** decisions_per_slot``: a far-sighted
        navigation leans on the stale history. It is fleet-aware: it tracks where its own vacant
        taxis will be (``vacant_taxis[s]`` of them, moved by the previous slot's recommendations) and
        expects fewer customers where many of them pass.
        """
        forecast, vacant, choices, counts = self._plan_inputs(forecast, slot_min, vacant_taxis, background)
        net, par = self.net, self.params
        n_slots = forecast.shape[1]
        c, f8 = np.ascontiguousarray, np.float64
        rate = c(forecast.T, f8)
        edge_dst = c(net.edge_dst, np.int64)
        zone_fare, cruise, drop = c(self.zone_fare, f8), c(choices.cruise_prob, f8), c(self.dropoff_share, f8)
        mdp = self.mdp.kernel_args(par.gamma)
        ptr, to = mdp[0], mdp[1]
        n_e_table = self.mdp.pad_to.shape[1]
        flat = self.mdp.flat_pairs()[3]  # each pair's place in the (D, E) table
        cruise = c(cruise.ravel()[flat], f8)  # per pair
        by_action = np.argsort(flat, kind="stable").astype(np.int64)  # pairs in the table's row-major order
        by_action_e = c(flat[by_action] % n_e_table, np.int64)
        n_e = net.n_edges
        flow = np.full(n_e, 1.0 / n_e)  # where the vacant taxis are (distribution)
        v, q, z = np.zeros(n_e), np.empty(to.size), np.empty(to.size)
        p, fare, passes, moved = np.empty(n_e), np.empty(n_e), np.empty(net.n_nodes), np.empty(n_e)
        back_j, back_min, p_back = c(self.back_j, np.int64), c(self.back_min, f8), np.empty(self.back_j.size)
        for s in range(n_slots):
            late = LATE_NIGHT_FACTOR if is_late_night((s * slot_min) % 1440) else 1.0
            sweeps = self.initial_sweeps if s == 0 else self.sweeps_per_slot
            kernels.plan_solve(
                rate[s], float(vacant[s]), late, float(self.step_min), float(par.max_wait_min), zone_fare,
                edge_dst, flow, passes, *mdp, float(par.gamma), int(sweeps), float(par.temperature_yen),
                v, q, p, fare, z, back_j, back_min, p_back,
            )
            np.exp(z, out=z)
            kernels.plan_mix(z, float(par.compliance), cruise, int(choices.K), counts[s], ptr, to, by_action,
                             by_action_e, p, flow, drop, 3, moved)
        return NavigationPolicy(counts, choices)

    def plan_numpy(
        self,
        forecast: np.ndarray,
        slot_min: int,
        vacant_taxis: np.ndarray | None = None,
        background: np.ndarray | None = None,
    ) -> "NavigationPolicy":
        """:meth:`plan` with NumPy calls per slot (the reference the compiled planner is tested against); the
        same inputs, model and result."""
        forecast, vacant, choices, counts = self._plan_inputs(forecast, slot_min, vacant_taxis, background)
        net = self.net
        n_slots = forecast.shape[1]
        flow = np.full(net.n_edges, 1.0 / net.n_edges)  # where the vacant taxis are (distribution)
        v = None
        for s in range(n_slots):
            passes = np.bincount(net.edge_dst, weights=flow, minlength=net.n_nodes) * (vacant[s] / self.step_min)
            p, fare = self.slot_inputs(forecast[:, s], (s * slot_min) % 1440, passes)
            back = (self.back_pos, self.back_odds(forecast[:, s], passes))
            sweeps = self.initial_sweeps if v is None else self.sweeps_per_slot
            v, q, _ = value_iteration_numpy(self.mdp, p, fare, self.params.gamma, v0=v, max_iter=sweeps, tol=0.0,
                                            back=back)
            prob = choices.mix(boltzmann(q, self.params.temperature_yen))
            counts[s] = choices.counts(prob)
            flow = self._advance_flow(flow, prob, p)
        return NavigationPolicy(counts, choices)

    def _advance_flow(self, flow: np.ndarray, prob: np.ndarray, p: np.ndarray, steps: int = 3) -> np.ndarray:
        """Move the vacant-taxi distribution a few decisions on; taxis that pick up a customer re-enter
        where trips end (gravity-weighted destination zones)."""
        net = self.net
        drop = self.dropoff_share
        to = self.mdp.pad_to.ravel()
        for _ in range(steps):
            moved = np.bincount(to, weights=(prob * flow).ravel(), minlength=net.n_edges)
            picked = moved * p
            flow = moved - picked + picked.sum() * drop
        return flow / flow.sum()


def boltzmann(q: np.ndarray, temperature: float) -> np.ndarray:
    """(D, E) choice probabilities proportional to exp((Q - max Q) / temperature); padding gets 0."""
    w = np.exp((q - q.max(axis=0, keepdims=True)) / temperature)
    return w / w.sum(axis=0, keepdims=True)


class ChoiceTable:
    """How vacant drivers pick the next edge: a decision at edge e draws j uniform in 0..K-1 and takes the
    first action whose rounded cumulative count exceeds j (action index = how many of the (D-1) counts of e
    are <= j).

    Counts are the choice distribution's cumulative probabilities times K = 32768, rounded (uint16): fine
    enough that a small change of the navigation's parameters changes a decision only as rarely as the
    probabilities themselves move (issue 19; they were sixteenths before).
    """

    K = kernels.CHOICE_K

    def __init__(self, net: Network, compliance: float) -> None:
        self.net = net
        self.compliance = compliance
        deg = np.diff(net.state_ptr)
        self.max_deg = int(deg.max())
        k = np.arange(self.max_deg)[:, None]
        valid = k < deg[None, :]
        pad_pair = np.minimum(net.state_ptr[:-1][None, :] + k, net.state_ptr[1:][None, :] - 1)
        self.first_pair = net.state_ptr[:-1].astype(np.int32)
        # cruising without navigation, on a driver's habits: mostly straight on, easy turns before hard
        # ones, main roads before back streets, no U-turn unless it is the only way on
        turn = net.pair_turn[pad_pair]
        w = HABIT_TURN[turn] * HABIT_CLASS[net.edge_class[net.pair_to[pad_pair]]] * valid
        if net.drive_side == "right":
            w = HABIT_TURN[np.array([RIGHT, STRAIGHT, LEFT, UTURN])[turn]] * HABIT_CLASS[net.edge_class[net.pair_to[pad_pair]]] * valid
        w = np.where(w.sum(axis=0, keepdims=True) > 0, w, valid.astype(float))
        self.cruise_prob = w / w.sum(axis=0, keepdims=True)

    def mix(self, nav_prob: np.ndarray | None) -> np.ndarray:
        """(D, E) what drivers do: follow the navigation with probability ``compliance``, else cruise."""
        if nav_prob is None:
            return self.cruise_prob
        return self.compliance * nav_prob + (1.0 - self.compliance) * self.cruise_prob

    def counts(self, prob: np.ndarray) -> np.ndarray:
        """(D-1, E) uint16 rounded cumulative counts: how many of the K entries go to actions <= k."""
        return (np.cumsum(prob[:-1], axis=0) * self.K + 0.5).astype(np.uint16)

    def pairs(self, counts: np.ndarray, edges: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The pair each decision takes: at ``edges`` with draws ``j`` (vectorised over decisions)."""
        return self.first_pair[edges] + (counts[:, edges] <= j[None, :]).sum(axis=0)


class CruisePolicy:
    """No navigation: vacant drivers wander, never U-turning unless they must."""

    def __init__(self, choices: ChoiceTable) -> None:
        self._counts = choices.counts(choices.cruise_prob)

    def slot_counts(self, slot: int) -> np.ndarray:
        """(D-1, E) uint16 rounded cumulative counts (the same every slot)."""
        return self._counts


class NavigationPolicy:
    """Turns a slot's values into a choice distribution over next edges, one slot at a time.

    Drivers at the same corner are not all sent the same way: the navigation recommends the next edge
    with probability proportional to ``exp((Q - max Q) / temperature_yen)`` (a Boltzmann policy), so
    near-equal routes share the traffic instead of herding every taxi into the same loop. A driver
    follows the recommendation with probability ``compliance`` and otherwise cruises.
    """

    def __init__(self, counts: np.ndarray, choices: ChoiceTable) -> None:
        self.counts = counts  # (slots, D-1, E) uint16, from the planner
        self.choices = choices

    @property
    def n_slots(self) -> int:
        return int(self.counts.shape[0])

    def slot_counts(self, slot: int) -> np.ndarray:
        """(D-1, E) uint16 rounded cumulative counts of ``slot``: every engine reads a decision's action
        straight from them (:meth:`ChoiceTable.pairs`)."""
        return self.counts[min(slot, self.n_slots - 1)]
