"""One simulation from plain parameters to plain results: the simulator's public entry point."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from .demand import SLOT_MIN, DemandModel, DemandSettings
from .engine import Engine, EngineSettings, SimOutput, SERVED, ABANDONED
from .fares import tokyo_fare
from .navigation import ChoiceTable, CruisePolicy, NavigationParams, NavigationPolicy, Planner
from .regions import Region, build_region
from .scenario import ScenarioDays, fleet_mask
from .shifts import SHIFT_KINDS, plan_shifts


@dataclass(frozen=True)
class SimParams:
    """Everything one simulation needs, as plain values."""

    region: str
    n_drivers: int
    requests_per_hour: float
    start_weekday: int  # 0 = Monday
    n_days: int
    seed: int
    demand_source: str = "ml"  # "ml" | "stats"
    policy: NavigationParams | None = None  # None: random cruising, no navigation
    fleet_mix: tuple[float, float, float] = (0.6, 0.25, 0.15)  # alternate-day, day, night
    max_shift_h: float | None = None
    cruise_speed_factor: float = 0.7
    demand: DemandSettings | None = None  # None: defaults with requests_per_hour
    network_seed: int = 0
    # the city on each simulated day (n_days + 1 states: the last shift's tail runs into the next day);
    # None: the stationary city (experiment.sim.scenario)
    scenario_days: ScenarioDays | None = None


@dataclass
class SimResult:
    metrics: dict[str, float]
    driver_days: dict[str, np.ndarray]  # one row per (driver, operating day)
    daily_revenue_per_driver: list[float]
    timings: dict[str, float]
    output: SimOutput = field(repr=False)


@dataclass(frozen=True)
class RegionPaths:
    """Shortest paths a region needs: to every destination candidate and to every depot."""

    dest_time: np.ndarray
    dest_len: np.ndarray
    depot_time: np.ndarray
    depot_len: np.ndarray
    zone_fare: np.ndarray  # (Z,) expected day fare of a trip starting in the zone
    zone_trip_min: np.ndarray  # (Z,) expected free-flow trip minutes from the zone


@lru_cache(maxsize=4)
def region_paths(name: str, network_seed: int, dest_key: bytes, gravity_key: bytes) -> RegionPaths:
    region = build_region(name, network_seed)
    net = region.network
    dest = np.frombuffer(dest_key, dtype=np.int64)
    gravity = np.frombuffer(gravity_key, dtype=np.float64).reshape(net.n_zones, net.n_zones)
    dt, dl = net.shortest_paths_to(dest)
    n_in = dest.size - region.gateways.size  # destination candidates inside zones (gateways last)
    kt, kl = net.shortest_paths_to(region.depots)
    # expected fare and trip time from each origin zone (typical daytime traffic)
    fares = tokyo_fare(dl[:n_in], dt[:n_in] * 1.2 * 60.0 * 0.26)  # daytime: traffic._SLOW_SHARE
    onehot = np.zeros((net.n_nodes, net.n_zones))
    onehot[np.arange(net.n_nodes), net.node_zone] = 1.0
    per_zone = onehot / np.maximum(onehot.sum(axis=0), 1.0)
    dz = net.node_zone[dest[:n_in]]
    agg = np.zeros((net.n_zones, n_in))
    agg[dz, np.arange(n_in)] = 1.0
    agg /= np.maximum(agg.sum(axis=1, keepdims=True), 1.0)
    fare_od = (agg @ fares @ per_zone).T  # (origin zone, dest zone)
    time_od = (agg @ dt[:n_in] @ per_zone).T
    return RegionPaths(
        dest_time=dt,
        dest_len=dl,
        depot_time=kt,
        depot_len=kl,
        zone_fare=(gravity * fare_od).sum(axis=1),
        zone_trip_min=(gravity * time_od).sum(axis=1),
    )


def with_long_trips(paths: RegionPaths, s: DemandSettings) -> tuple[np.ndarray, np.ndarray]:
    """Expected fare and trip minutes per origin zone, counting trips that leave the region."""
    extra_km = s.long_trip_median_km * np.exp(0.6**2 / 2)  # log-normal mean
    extra_fare = 100.0 * extra_km * 1000.0 / 255.0
    extra_min = 2 * extra_km / 40.0 * 60.0
    share = s.long_trip_share
    return paths.zone_fare + share * extra_fare, paths.zone_trip_min + share * extra_min


def region_depot_count(p: SimParams) -> int:
    return int(build_region(p.region, p.network_seed).depots.size)


def vacant_taxis(shifts, n_slots: int) -> np.ndarray:
    """Vacant taxis the navigation expects in each slot: about half of the fleet on duty (the shift
    plan is published in advance)."""
    bounds = np.arange(n_slots + 1) * SLOT_MIN
    lo = np.searchsorted(bounds, shifts.start, side="right") - 1
    hi = np.searchsorted(bounds, shifts.end, side="left")
    on = np.zeros(n_slots + 1)
    np.add.at(on, np.clip(lo, 0, n_slots), 1)
    np.add.at(on, np.clip(hi, 0, n_slots), -1)
    return 0.5 * np.cumsum(on)[:n_slots]


def build_engine(p: SimParams, timings: dict[str, float] | None = None, *, numpy: bool = False) -> Engine:
    """Everything before the drivers move: shifts, region, demand, forecasts and the navigation.

    Deterministic for ``p``; each call returns an independent engine with its own random stream.
    ``numpy=True`` plans and drives with the NumPy reference implementations (``Planner.plan_numpy``,
    :class:`~experiment.sim.engine_numpy.NumpyEngine`) instead of the compiled ones: same results, slower.
    """
    timings = {} if timings is None else timings
    rng = np.random.default_rng([p.seed, 404])
    shifts = plan_shifts(p.n_drivers, p.n_days, p.start_weekday, p.fleet_mix, rng, p.max_shift_h)
    sc = p.scenario_days
    if sc is not None and numpy:
        raise ValueError("the NumPy reference engine runs the stationary city only (scenario_days=None)")
    if sc is not None:
        shifts = working_shifts(shifts, active_drivers(p))
    driver_depot = rng.integers(0, region_depot_count(p), p.n_drivers)
    t0 = time.perf_counter()
    region: Region = build_region(p.region, p.network_seed)
    net = region.network
    settings = p.demand or DemandSettings(requests_per_hour=p.requests_per_hour)
    # the simulated horizon covers the last shift's tail: one extra day of demand
    dm = DemandModel(region, settings, p.start_weekday, p.n_days + 1, p.seed, scenario=sc)
    paths = region_paths(
        p.region, p.network_seed, dm.dest_nodes.astype(np.int64).tobytes(), dm.gravity.tobytes()
    )
    timings["build_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    truth = dm.true_rates()
    pax = dm.passengers(truth)
    timings["plan_s"] = 0.0
    if p.policy is None:
        policy: NavigationPolicy | CruisePolicy = CruisePolicy(ChoiceTable(net, 0.0))
        timings["demand_s"] = time.perf_counter() - t1
    else:
        stats = dm.stats_forecast()
        forecast = dm.ml_forecast(truth, stats, p.seed) if p.demand_source == "ml" else stats
        timings["demand_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        zone_fare, zone_trip_min = with_long_trips(paths, settings)
        planner = Planner(net, p.policy, zone_fare, dm.gravity, zone_trip_min)
        plan = planner.plan_numpy if numpy else planner.plan
        policy = plan(forecast, SLOT_MIN, vacant_taxis(shifts, forecast.shape[1]), stats)
        timings["plan_s"] = time.perf_counter() - t2
        timings["vi_ms_per_slot"] = 1000.0 * timings["plan_s"] / forecast.shape[1]
    engine_cls = Engine
    if numpy:
        from .engine_numpy import NumpyEngine

        engine_cls = NumpyEngine
    return engine_cls(
        net, pax, dm.dest_nodes, paths.dest_time, paths.dest_len, region.depots,
        paths.depot_time, paths.depot_len, shifts, driver_depot, policy, SLOT_MIN,
        p.start_weekday, p.seed, EngineSettings(cruise_speed_factor=p.cruise_speed_factor),
        **scenario_traffic(sc, p.n_days),
    )


def active_drivers(p: SimParams) -> np.ndarray:
    """(drivers, n_days) True where the driver works for the company that day (all True without a
    scenario): fleet changes of the scenario."""
    if p.scenario_days is None:
        return np.ones((p.n_drivers, p.n_days), dtype=bool)
    return fleet_mask(p.n_drivers, p.scenario_days.column("fleet")[: p.n_days], p.seed)


def working_shifts(shifts, active: np.ndarray):
    """The shifts of drivers who work for the company on the shift's day."""
    from dataclasses import replace

    keep = active[shifts.driver, shifts.day]
    return replace(
        shifts, driver=shifts.driver[keep], day=shifts.day[keep], kind=shifts.kind[keep],
        start=shifts.start[keep], end=shifts.end[keep], breaks=shifts.breaks[keep],
    )


def scenario_traffic(sc: ScenarioDays | None, n_days: int) -> dict:
    """The engine's traffic inputs: travel time per calendar day; the right-turn delay is one value per
    run in the compiled loop, so it is the mean over the window's operating days."""
    if sc is None:
        return {}
    rt = sc.column("right_turn_delay")[:n_days]
    return {"day_congestion": sc.column("congestion"), "right_turn_delay": float(rt.mean())}


def simulate(
    p: SimParams, on_day: Callable[[int, float], bool] | None = None, *, numpy: bool = False
) -> SimResult:
    """Build demand, plan the navigation, run the drivers, and summarise.

    ``on_day(day, revenue_per_driver_day_so_far)`` is called at each midnight before the last day (the
    intermediate values a pruner judges); returning True stops the run with
    :class:`~experiment.sim.engine.SimulationStopped`. ``numpy=True``: the NumPy reference engine and
    planner (see :func:`build_engine`).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    engine = build_engine(p, timings, numpy=numpy)
    active = active_drivers(p)  # drivers who left the company earn nothing and are not counted
    per_day = active.sum(axis=0).astype(float)
    cum = np.cumsum(per_day)
    wrapped = None
    if on_day is not None:
        wrapped = lambda day, revenue: on_day(day, revenue / max(cum[day], 1.0))  # noqa: E731
    t3 = time.perf_counter()
    out = engine.run(wrapped, p.n_days)
    timings["sim_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0

    driver_days = _driver_days(out, p.n_drivers, p.n_days)
    metrics = _metrics(out, float(cum[-1]), engine.pax.n)
    daily_sum = driver_days["revenue_yen"].reshape(p.n_drivers, p.n_days).sum(axis=0)
    daily = [float(x) for x in daily_sum / np.maximum(per_day, 1.0)]
    timings["driver_minutes"] = float(np.nansum(out.t_end - out.shifts.start))
    timings["decisions"] = float(out.decisions)
    return SimResult(metrics, driver_days, daily, timings, out)


def _driver_days(out: SimOutput, n_drivers: int, n_days: int) -> dict[str, np.ndarray]:
    """One row per driver and operating day; days off are rows of zeros (a car-day earns nothing)."""
    sh = out.shifts
    idx = sh.driver.astype(np.int64) * n_days + sh.day
    rows = {"driver": np.repeat(np.arange(n_drivers), n_days), "day": np.tile(np.arange(n_days), n_drivers)}
    rows["shift_kind"] = np.array(SHIFT_KINDS)[sh.driver_kind[rows["driver"]]]
    rows["worked"] = np.zeros(n_drivers * n_days, dtype=bool)
    rows["worked"][idx] = True
    for name, src in (
        ("revenue_yen", out.revenue), ("trips", out.trips), ("km_occupied", out.km_occupied),
        ("km_vacant", out.km_vacant), ("km_return", out.km_return), ("min_vacant", out.min_vacant),
        ("min_occupied", out.min_occupied), ("min_break", out.min_break), ("min_return", out.min_return),
    ):
        col = np.zeros(n_drivers * n_days)
        col[idx] = src
        rows[name] = col
    rows["trips"] = rows["trips"].astype(np.int64)
    on = np.zeros(n_drivers * n_days)
    on[idx] = out.t_end - sh.start
    rows["min_on_shift"] = on
    return rows


def _metrics(out: SimOutput, driver_days: float, n_requests: int) -> dict[str, float]:
    n_shifts = max(out.shifts.n_shifts, 1)
    revenue = float(out.revenue.sum())
    trips = float(out.trips.sum())
    km_occ = float(out.km_occupied.sum())
    km_all = km_occ + float(out.km_vacant.sum()) + float(out.km_return.sum())
    served = int((out.passenger_status == SERVED).sum())
    abandoned = int((out.passenger_status == ABANDONED).sum())
    return {
        "objective": revenue / driver_days,
        "revenue_per_driver_day_yen": revenue / driver_days,
        "revenue_per_driver_shift_yen": revenue / n_shifts,
        "occupancy_distance": km_occ / km_all if km_all else 0.0,
        "trips_per_driver_shift": trips / n_shifts,
        "mean_fare_yen": revenue / trips if trips else 0.0,
        "km_per_shift": km_all / n_shifts,
        "km_per_trip": km_occ / trips if trips else 0.0,
        "shifts": float(n_shifts),
        "requests": float(n_requests),
        "served": float(served),
        "abandoned": float(abandoned),
        "service_rate": served / max(served + abandoned, 1),
    }
