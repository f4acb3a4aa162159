"""Street-hail demand: the truth the simulator draws passengers from, and the forecasts the navigation plans with.

Passengers hail at street corners (nodes): a vacant taxi arriving at the node can stop for them. True
demand at node v in 30-minute slot s is a Poisson rate

    lambda[v, s] = sum_c A[v, c] * profile_c[s] * (day-to-day noise of the zone and hot spot)

where A collects the hail density (per km, by road class and distance to hot spots) of the streets that
end at v.
with components c = background (the City of Chicago daily pickup profile: peak 19:00, trough 05:00),
stations (commute peaks, last trains), nightlife (evenings, Fridays and Saturdays) and offices
(weekday business hours). The week being simulated has *drifted* from the history the statistics were
computed on: hot spots grew or shrank. Forecasts:

* ``stats``: the historical hour-of-week mean (no drift, no daily noise; stale);
* ``ml``: a 30-minute-ahead forecast of the current week (noisy per zone and slot), which is late in some
  slots; then the navigation falls back to ``stats``.

Each passenger waits a random patience (log-normal) and leaves if no vacant taxi passes in time; the
destination zone follows a gravity model ``P(d | o) ~ attraction_d * exp(-beta * km_od)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from scipy.sparse import csr_matrix

from .regions import HOTSPOT_KINDS, Region
from .scenario import ScenarioDays

SLOT_MIN = 30
SLOTS_PER_DAY = 1440 // SLOT_MIN
COMPONENTS: tuple[str, ...] = ("background",) + HOTSPOT_KINDS


@dataclass(frozen=True)
class DemandSettings:
    """Plain parameters of the demand model (validated by the app before they get here)."""

    requests_per_hour: float  # mean street-hail requests per hour over the week, whole region
    background_share: float = 0.5  # share of requests not tied to a hot spot
    patience_median_min: float = 8.0
    patience_sigma: float = 0.5
    drift_sigma: float = 0.4  # hot-spot change between history and the simulated week  # hot-spot change between history and the simulated week
    day_sigma: float = 0.15  # day-to-day noise per hot spot
    zone_day_sigma: float = 0.10  # day-to-day noise per zone
    ml_sigma: float = 0.20  # ml forecast error per zone and slot
    ml_late_prob: float = 0.08  # share of slots where the ml forecast is late (fallback to stats)
    gravity_beta_per_km: float = 0.22
    long_trip_share: float = 0.10  # trips that leave the region (suburbs, airports) by expressway
    long_trip_median_km: float = 9.0  # distance driven outside the region, each way


@dataclass(frozen=True)
class Passengers:
    """Every street-hail request of the simulation, sorted by arrival time (minutes from window start)."""

    arrival: np.ndarray  # float64
    expiry: np.ndarray  # float64 arrival + patience
    node: np.ndarray  # int32 street corner where the passenger stands
    dest: np.ndarray  # int32 index into the destination node set
    outside_km: np.ndarray  # float64 distance driven outside the region (0 for trips inside it)

    @property
    def n(self) -> int:
        return int(self.arrival.size)


@lru_cache(maxsize=1)
def chicago_profile() -> dict:
    """Hourly pickup shares and weekday shares of 10,804 City of Chicago taxi trips (see data/)."""
    with resources.files("experiment.sim").joinpath("data/chicago_profile.json").open() as fh:
        return json.load(fh)


def weekly_profiles() -> np.ndarray:
    """(components, 336) relative intensity per 30-min slot of the week (Monday 00:00 first), mean 1."""
    prof = chicago_profile()
    hour = np.asarray(prof["hour_share_smoothed"]) * 24.0
    dow = np.asarray(prof["dow_share"]) * 7.0
    background = (dow[:, None] * hour[None, :]).ravel()
    h = np.arange(24)
    weekday = np.arange(7) < 5
    station_day = 0.3 + np.exp(-0.5 * ((h - 8.5) / 1.2) ** 2) + 1.2 * np.exp(-0.5 * ((h - 19.0) / 1.8) ** 2)
    station_day += 0.9 * np.exp(-0.5 * ((h - 23.7) / 0.8) ** 2) + 0.9 * np.exp(-0.5 * ((h + 0.3) / 0.8) ** 2)
    station_day[1:6] = 0.1  # no trains, few people
    station = np.stack([station_day if w else 0.5 + 0.5 * station_day for w in weekday]).ravel()
    night_day = 0.05 + np.exp(-0.5 * (((h - 0.5 + 12) % 24 - 12) / 2.2) ** 2)
    night_mult = np.array([0.7, 0.8, 0.9, 1.0, 1.6, 1.7, 0.6])  # by the day the evening starts
    nightlife = (night_mult[:, None] * night_day[None, :]).ravel()
    nightlife = 0.5 * (nightlife + np.roll(nightlife, -24) * (h[None, :].repeat(7, 0).ravel() < 6))
    office_day = 0.05 + np.exp(-0.5 * ((h - 13.5) / 3.0) ** 2)
    office = np.stack([office_day if w else 0.25 * office_day for w in weekday]).ravel()
    hourly = np.stack([background, station, nightlife, office])
    hourly = hourly / hourly.mean(axis=1, keepdims=True)
    return np.repeat(hourly, 60 // SLOT_MIN, axis=1)


class DemandModel:
    """Spatial components, the drifted current week, passengers and forecasts for one region and window."""

    def __init__(
        self,
        region: Region,
        settings: DemandSettings,
        start_weekday: int,
        n_days: int,
        seed: int,
        dest_per_zone: int = 3,
        scenario: ScenarioDays | None = None,
    ) -> None:
        self.region = region
        self.scenario = scenario
        self.settings = settings
        self.start_weekday = start_weekday
        self.n_days = n_days
        self.rng = np.random.default_rng([seed, 101])
        net = region.network
        self.n_slots = n_days * SLOTS_PER_DAY
        mid = 0.5 * (net.node_xy[net.edge_src] + net.node_xy[net.edge_dst])
        km = net.edge_len_m / 1000.0
        # kernels of every hot spot on every edge (edges x hotspots), hail density per km
        class_mult = np.array([1.0, 0.8, 0.4])[net.edge_class]  # hails stand on main roads
        kern = np.stack(
            [np.exp(-((mid - [h.x, h.y]) ** 2).sum(1) / (2 * h.sigma_m**2)) for h in region.hotspots], axis=1
        ) * (km * class_mult)[:, None]
        w = np.array([h.weight for h in region.hotspots])
        self.hotspot_kind = np.array([HOTSPOT_KINDS.index(h.kind) for h in region.hotspots])
        kern = kern / kern.sum(axis=0, keepdims=True) * w  # each hot spot's mass = its weight
        bg = region.background * km
        per_min = settings.requests_per_hour / 60.0
        hot_total = w.sum()
        # streets' hails gather at the corner they lead to: (nodes x edges) aggregation
        to_node = csr_matrix(
            (np.ones(net.n_edges), (net.edge_dst, np.arange(net.n_edges))), shape=(net.n_nodes, net.n_edges)
        )
        self.bg_rate = to_node @ (bg / bg.sum() * per_min * settings.background_share)
        self.hot_rate = to_node @ (kern / hot_total * per_min * (1.0 - settings.background_share))  # (N, H)
        self.drift = np.exp(self.rng.normal(0.0, settings.drift_sigma, len(region.hotspots)))
        self.profiles = weekly_profiles()  # (4, 336)
        self._gravity()
        self._new_hotspot(mid, km * class_mult, to_node, per_min / hot_total)

    def _new_hotspot(self, mid: np.ndarray, weight_km: np.ndarray, to_node: csr_matrix, per_weight: float) -> None:
        """The scenario's new hot spot (if any): its rate per corner at full weight, and its own noise
        stream (the region's streams stay as they are, so the rest of the city is unchanged)."""
        sc = self.scenario
        self.new_rate = None
        if sc is None or sc.hotspot is None:
            return
        h = sc.hotspot
        k = np.exp(-((mid - [h.x, h.y]) ** 2).sum(1) / (2 * h.sigma_m**2)) * weight_km
        k = k / k.sum() * h.weight * per_weight * (1.0 - self.settings.background_share)
        self.new_rate = np.asarray(to_node @ k)
        self.new_kind = 1 + HOTSPOT_KINDS.index(h.kind)  # its row in the profiles
        self.new_rng = np.random.default_rng([self.n_slots, 606])

    def _day(self, name: str) -> np.ndarray:
        """(n_days,) the scenario's factor per simulated day (ones without a scenario)."""
        if self.scenario is None:
            return np.ones(self.n_days)
        col = self.scenario.column(name)
        return col[np.minimum(np.arange(self.n_days), col.size - 1)]

    def _scale_days(self, rates: np.ndarray, name: str) -> np.ndarray:
        """Multiply each day's slots by the scenario's factor (in place), and add the new hot spot."""
        if self.scenario is None:
            return rates
        per_slot = np.repeat(self._day("demand"), SLOTS_PER_DAY).astype(np.float32)
        rates *= per_slot[None, :]
        if self.new_rate is not None:
            share = np.repeat(self._day(name), SLOTS_PER_DAY)
            if name == "hotspot":  # the truth: day-to-day noise as every hot spot has
                s = self.settings
                share = share * np.repeat(
                    np.exp(self.new_rng.normal(-s.day_sigma**2 / 2, s.day_sigma, self.n_days)), SLOTS_PER_DAY
                )
            prof = self._slot_profiles()[self.new_kind]
            rates += (self.new_rate[:, None] * (share * prof * per_slot)[None, :]).astype(np.float32)
        return rates

    # ---------------------------------------------------------------------------------------------
    def _slot_profiles(self) -> np.ndarray:
        """(components, n_slots) profile values for the simulated slots."""
        first = self.start_weekday * SLOTS_PER_DAY
        idx = (first + np.arange(self.n_slots)) % self.profiles.shape[1]
        return self.profiles[:, idx]

    def _component_rates(self, hot_mult: np.ndarray) -> np.ndarray:
        """(N, components) rates given a multiplier per hot spot."""
        cols = [self.bg_rate]
        for k in range(len(HOTSPOT_KINDS)):
            sel = self.hotspot_kind == k
            cols.append(self.hot_rate[:, sel] @ hot_mult[sel] if sel.any() else np.zeros_like(self.bg_rate))
        return np.stack(cols, axis=1)

    def stats_forecast(self) -> np.ndarray:
        """(N, n_slots) historical hour-of-week mean rate per minute (float32)."""
        comp = self._component_rates(np.ones(len(self.region.hotspots)))
        return self._scale_days((comp @ self._slot_profiles()).astype(np.float32), "hotspot_known")

    def true_rates(self) -> np.ndarray:
        """(N, n_slots) the current week's rate per minute: drifted hot spots and day-to-day noise."""
        s = self.settings
        net = self.region.network
        prof = self._slot_profiles()
        out = np.empty((net.n_nodes, self.n_slots), dtype=np.float32)
        for d in range(self.n_days):
            hot = self.drift * np.exp(self.rng.normal(-s.day_sigma**2 / 2, s.day_sigma, self.drift.size))
            zone = np.exp(self.rng.normal(-s.zone_day_sigma**2 / 2, s.zone_day_sigma, net.n_zones))
            comp = self._component_rates(hot) * zone[net.node_zone][:, None]
            sl = slice(d * SLOTS_PER_DAY, (d + 1) * SLOTS_PER_DAY)
            out[:, sl] = comp @ prof[:, sl]
        return self._scale_days(out, "hotspot")

    def ml_forecast(self, truth: np.ndarray, stats: np.ndarray, seed: int) -> np.ndarray:
        """30-minute-ahead forecast: truth x log-normal error per zone and slot; late slots fall back to stats."""
        s = self.settings
        rng = np.random.default_rng([seed, 202])
        net = self.region.network
        err = np.exp(rng.normal(-s.ml_sigma**2 / 2, s.ml_sigma, (net.n_zones, self.n_slots))).astype(np.float32)
        fc = truth * err[net.node_zone]
        late = rng.random(self.n_slots) < s.ml_late_prob
        fc[:, late] = stats[:, late]
        self.ml_late_slots = late
        return fc

    # ---------------------------------------------------------------------------------------------
    def _gravity(self) -> None:
        """Destination candidates per zone and the zone-to-zone gravity matrix."""
        net = self.region.network
        rng = np.random.default_rng([self.region.network.n_nodes, 7])
        cand = []
        for zid in range(net.n_zones):
            nodes = np.flatnonzero(net.node_zone == zid)
            if nodes.size:
                cand.append(rng.choice(nodes, size=min(3, nodes.size), replace=False))
        nodes = np.concatenate(cand)
        nodes = nodes[np.lexsort((nodes, net.node_zone[nodes]))]  # grouped by zone
        self.n_gateways = self.region.gateways.size
        self.dest_nodes = np.concatenate([nodes, self.region.gateways])  # gateways last
        self.dest_zone = net.node_zone[nodes]
        zones_with_dest = np.bincount(self.dest_zone, minlength=net.n_zones) > 0
        dkm = np.hypot(*(net.zone_xy[:, None, :] - net.zone_xy[None, :, :]).transpose(2, 0, 1)) / 1000.0
        g = self.region.zone_attraction[None, :] * np.exp(-self.settings.gravity_beta_per_km * dkm)
        g = g * zones_with_dest[None, :]
        self.gravity = g / g.sum(axis=1, keepdims=True)  # (Z, Z) P(dest zone | origin zone)

    def passengers(self, truth: np.ndarray) -> Passengers:
        """Draw every request of the window from the true rates (deterministic for the model's seed)."""
        s = self.settings
        rng = self.rng
        counts = rng.poisson(truth.sum(axis=0).astype(float) * SLOT_MIN)
        nodes, times = [], []
        for slot in np.flatnonzero(counts):
            cdf = np.cumsum(truth[:, slot], dtype=float)
            u = rng.random(counts[slot]) * cdf[-1]
            nodes.append(np.searchsorted(cdf, u, side="right"))
            times.append(slot * SLOT_MIN + rng.random(counts[slot]) * SLOT_MIN)
        # a window may draw no request at all (a tiny demand): empty arrays, not a failed concatenate
        node = np.minimum(np.concatenate(nodes or [np.zeros(0, np.int64)]), truth.shape[0] - 1).astype(np.int32)
        arrival = np.concatenate(times or [np.zeros(0)])
        order = np.argsort(arrival, kind="stable")
        node, arrival = node[order], arrival[order]
        patience = np.exp(rng.normal(np.log(s.patience_median_min), s.patience_sigma, node.size))
        if self.scenario is not None:  # customers wait longer or shorter on the day they hail
            patience *= self._day("patience")[np.minimum((arrival // 1440).astype(np.int64), self.n_days - 1)]
        net = self.region.network
        oz = net.node_zone[node]
        cum = np.cumsum(self.gravity, axis=1)
        u = rng.random(node.size)
        dz = np.empty(node.size, dtype=np.int64)
        for a in range(0, node.size, 1 << 15):  # in blocks: a (requests x zones) table is ~150 MiB a week
            b = a + (1 << 15)
            dz[a:b] = (cum[oz[a:b]] < u[a:b, None]).sum(axis=1)
        dz = np.minimum(dz, net.n_zones - 1)
        # a node among the destination candidates of that zone
        ptr = np.searchsorted(self.dest_zone, np.arange(net.n_zones + 1))
        n_in = ptr[dz + 1] - ptr[dz]
        dest = ptr[dz] + (rng.random(node.size) * n_in).astype(np.int64)
        # trips leaving the region drive to an expressway gateway, on outside, and come back empty
        long = rng.random(node.size) < s.long_trip_share
        gate = self.dest_nodes.size - self.n_gateways + rng.integers(0, self.n_gateways, node.size)
        dest = np.where(long, gate, dest)
        outside = np.where(
            long, np.exp(rng.normal(np.log(s.long_trip_median_km), 0.6, node.size)), 0.0
        )
        return Passengers(
            arrival=arrival, expiry=arrival + patience, node=node, dest=dest.astype(np.int32),
            outside_km=outside,
        )
