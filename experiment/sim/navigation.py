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
zone-mean and gravity steps are sparse / small dense products. Slots are solved backwards in time, each
warm-started from the next slot's values (finite-horizon backward induction with a few sweeps per slot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from .fares import is_late_night, LATE_NIGHT_FACTOR
from .network import Network, ROAD_CLASSES, TURN_TYPES


@dataclass(frozen=True)
class NavigationParams:
    """The tuned hyper-parameters of the navigation (plain values)."""

    gamma: float
    max_wait_min: float
    class_weights: tuple[float, float, float]  # arterial, collector, local
    turn_weights: tuple[float, float, float, float]  # left, straight, right, uturn
    cost_yen_per_min: float = 20.0
    turn_base_min: float = 0.25
    temperature_yen: float = 40.0

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

    def edge_values(self, v: np.ndarray, p: np.ndarray, fare: np.ndarray, gamma: float) -> np.ndarray:
        """W(e'): value of committing to edge e' before paying its cost."""
        vdest = self.gravity @ (self.zone_mean @ v)  # (Z,)
        after_trip = (gamma ** self.trip_steps * vdest)[self.edge_zone]
        return p * (fare + after_trip) + (1.0 - p) * gamma * v

    def bellman(
        self, v: np.ndarray, p: np.ndarray, fare: np.ndarray, gamma: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """One Bellman backup: (Q per (state, k-th action), new V per state)."""
        q = self.edge_values(v, p, fare, gamma)[self.pad_to] - self.pad_cost
        return q, q.max(axis=0)

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
    q = np.empty(0)
    it = 0
    for it in range(1, max_iter + 1):
        q, v_new = mdp.bellman(v, p, fare, gamma)
        done = np.max(np.abs(v_new - v)) < tol
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
        sweeps_per_slot: int = 8,
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
        self.mdp = EdgeMDP.padded(
            net.state_ptr,
            net.pair_to,
            params.cost_yen_per_min * perceived,
            edge_zone=net.edge_zone,
            zone_mean=zone_mean,
            gravity=gravity,
            trip_steps=zone_trip_min / step_min,
        )

    def slot_inputs(
        self, rate: np.ndarray, slot_minute_of_day: float, rival_passes_per_min: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pick-up probability and expected fare per edge for one slot's forecast rate per corner (per minute).

        Customers at corner v arrive at ``rate[v]``, give up after ``max_wait_min`` on average and are
        taken by rival vacant taxis, assumed to pass corners in proportion to demand
        (``rival_passes_per_min`` in all). Expected customers waiting: rate / (1/max_wait + rivals at v).
        """
        rate = rate.astype(float)
        total = rate.sum()
        rivals = rival_passes_per_min * rate / total if total > 0 else 0.0
        waiting = rate / (1.0 / self.params.max_wait_min + rivals)
        p = -np.expm1(-waiting)[self.net.edge_dst]
        late = LATE_NIGHT_FACTOR if is_late_night(slot_minute_of_day) else 1.0
        return p, (self.zone_fare * late)[self.net.edge_zone]

    def plan(
        self, forecast: np.ndarray, slot_min: int, rival_passes: np.ndarray | None = None
    ) -> "NavigationPolicy":
        """Solve every slot of ``forecast`` (nodes x slots) backwards in time.

        ``rival_passes[s]`` is the expected number of corner passes per minute by vacant taxis in slot s.
        """
        n_slots = forecast.shape[1]
        rivals = np.zeros(n_slots) if rival_passes is None else rival_passes
        values = np.empty((n_slots, self.net.n_edges), dtype=np.float32)
        inputs = []
        v = None
        for s in range(n_slots - 1, -1, -1):
            p, fare = self.slot_inputs(forecast[:, s], (s * slot_min) % 1440, float(rivals[s]))
            sweeps = self.initial_sweeps if v is None else self.sweeps_per_slot
            v, _, _ = value_iteration(self.mdp, p, fare, self.params.gamma, v0=v, max_iter=sweeps, tol=0.0)
            values[s] = v
            inputs.append((p.astype(np.float32), fare.astype(np.float32)))
        return NavigationPolicy(self, values, inputs[::-1])


class NavigationPolicy:
    """Turns a slot's values into a choice distribution over next edges, one slot at a time.

    Drivers at the same corner are not all sent the same way: the navigation recommends the next edge
    with probability proportional to ``exp((Q - max Q) / temperature_yen)`` (a Boltzmann policy), so
    near-equal routes share the traffic instead of herding every taxi into the same loop.
    """

    def __init__(self, planner: Planner, values: np.ndarray, inputs: list) -> None:
        self.planner = planner
        self.values = values
        self.inputs = inputs
        self.temperature = planner.params.temperature_yen
        net = planner.net
        deg = np.diff(net.state_ptr)
        self.max_deg = int(deg.max())
        # padded (k, edge) -> pair index, as in the planner's EdgeMDP
        k = np.arange(self.max_deg)[:, None]
        self.pad_pair = np.minimum(net.state_ptr[:-1][None, :] + k, net.state_ptr[1:][None, :] - 1)
        self._slot = -1
        self._cdf = np.empty(0)

    @property
    def n_slots(self) -> int:
        return int(self.values.shape[0])

    def cdf(self, slot: int) -> np.ndarray:
        """(edges, max_deg) cumulative choice probabilities for ``slot`` (cached for the current slot)."""
        if slot != self._slot:
            mdp = self.planner.mdp
            p, fare = self.inputs[slot]
            v = self.values[slot].astype(float)
            q, vmax = mdp.bellman(v, p.astype(float), fare.astype(float), self.planner.params.gamma)
            w = np.exp((q - vmax[None, :]) / self.temperature)  # padding has q = -inf: weight 0
            c = np.cumsum(w, axis=0)
            self._cdf = np.ascontiguousarray((c / c[-1:, :]).T)  # (edges, max_deg) for row gathers
            self._slot = slot
        return self._cdf

    def choose(self, slot: int, edge: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Pair index chosen by drivers at the heads of ``edge`` in ``slot`` with uniforms ``u``."""
        c = self.cdf(min(slot, self.n_slots - 1))[edge]
        k = (u[:, None] > c).sum(axis=1)
        return self.pad_pair[np.minimum(k, self.max_deg - 1), edge]
