"""The task: the one place where config, simulator, results and sinks meet.

``run(cfg)`` composes plain simulator parameters from the Hydra config, runs the simulation, writes
``summary.json`` into the job directory and per-driver-day rows to the sink, logs a short human summary,
and returns the objective (mean revenue per driver-day, yen) for a sweeper.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from hydra_plugins.navitune_shared.protocol import TrialContext
from omegaconf import DictConfig

from experiment.config import parse_day, scenario_from_config, validate
from experiment.sim.demand import DemandSettings
from experiment.sim.navigation import NavigationParams
from experiment.sim.shifts import SHIFT_KINDS
from experiment.sim.kernels import warm_up
from experiment.sim.simulate import SimParams, SimResult, simulate

log = logging.getLogger("navitune")

# Compile the simulator's kernels (or load them from Numba's on-disk cache) when the app is imported: a
# sweep imports it before its launcher forks the jobs, which then inherit the machine code.
warm_up()


def sim_params(cfg: DictConfig) -> SimParams:
    """Plain simulator parameters from a validated config."""
    r, d, w, p = cfg.region, cfg.demand, cfg.window, cfg.policy
    start, end = parse_day("window.start", w.start), parse_day("window.end", w.end)
    drivers = min(int(w.drivers), int(r.drivers)) if w.drivers is not None else int(r.drivers)
    scale = drivers / int(r.drivers)  # a capped fleet gets the same demand per driver
    mix = tuple(float(r.fleet_mix.get(k, 0.0)) for k in SHIFT_KINDS)
    policy = None
    if p.navigation:
        policy = NavigationParams.from_road_weights(
            float(p.gamma), float(p.max_wait_min), dict(p.road_weights), compliance=float(p.compliance)
        )
    return SimParams(
        region=str(r.name),
        n_drivers=drivers,
        requests_per_hour=float(r.requests_per_hour) * scale,
        start_weekday=start.weekday(),
        n_days=(end - start).days,
        seed=int(w.seed),
        demand_source=str(d.source),
        policy=policy,
        fleet_mix=mix,  # type: ignore[arg-type]
        max_shift_h=None if w.max_shift_h is None else float(w.max_shift_h),
        demand=DemandSettings(
            requests_per_hour=float(r.requests_per_hour) * scale,
            patience_median_min=float(d.patience_median_min),
            ml_sigma=float(d.ml_error),
            ml_late_prob=float(d.ml_late_prob),
        ),
        network_seed=int(r.network_seed),
        scenario_days=scenario_days(cfg, start, (end - start).days),
    )


def scenario_days(cfg: DictConfig, start: dt.date, n_days: int):
    """The city on each day of the window (and the day after: the last shifts run into it); None when the
    scenario leaves those days as the stationary city (no ``scenario`` group: stationary)."""
    node = cfg.get("scenario")
    if node is None:
        return None
    return scenario_from_config(node).days(start, n_days + 1)


def tuned_params(cfg: DictConfig, trial: int | None = None) -> dict[str, Any]:
    """The navigation parameters of this run, flat (what a sweep tunes). A sweep's trial runs a policy of its
    own, tuned from the composed one: ``policy`` is ``trial-<n>`` and ``policy_base`` the composed policy's
    name (e.g. production)."""
    p = cfg.policy
    out: dict[str, Any] = {"policy": p.name, "navigation": bool(p.navigation)}
    if trial is not None:
        out = {"policy": f"trial-{trial}", "policy_base": p.name, "navigation": bool(p.navigation)}
    if p.navigation:
        out |= {"gamma": float(p.gamma), "max_wait_min": float(p.max_wait_min), "compliance": float(p.compliance)}
        out |= {f"road_weights.{k}": float(v) for k, v in p.road_weights.items()}
    return out


def sweep_context() -> dict[str, Any]:
    """The study, trial, attempt and first attempt's trial of a sweep job (None each for a single run):
    the sink's idempotency key, so a job that runs again replaces its rows instead of adding to them."""
    return TrialContext.from_env().as_dict()


def _who(cfg: DictConfig, context: dict[str, Any]) -> str:
    """The policy's name for a single run; in a sweep the trial (its parameters differ from the named
    policy's, so the name alone would mislead)."""
    if context.get("trial") is None:
        return str(cfg.policy.name)
    attempt = context.get("attempt") or 0
    retry = f" (retry {attempt} of trial {context.get('origin_trial')})" if attempt else ""
    return f"trial {context['trial']}{retry}"


def summarize(cfg: DictConfig, result: SimResult, trial: int | None = None) -> dict[str, Any]:
    """The ``summary.json`` contract (docs/architecture.md, "Output contracts") plus context useful to people."""
    m = result.metrics
    return {
        "objective": m["objective"],
        "revenue_per_driver_day_yen": m["revenue_per_driver_day_yen"],
        "revenue_per_driver_shift_yen": m["revenue_per_driver_shift_yen"],
        "occupancy_distance": m["occupancy_distance"],
        "trips_per_driver_shift": m["trips_per_driver_shift"],
        "mean_fare_yen": m["mean_fare_yen"],
        "params": tuned_params(cfg, trial),
        "region": cfg.region.name,
        "scenario": str(cfg.scenario.name) if cfg.get("scenario") is not None else "stationary",
        "window": {"name": cfg.window.name, "start": cfg.window.start, "end": cfg.window.end},
        "demand_source": cfg.demand.source,
        "seed": int(cfg.window.seed),
        "drivers": int(len(result.driver_days["driver"]) // max(len(result.daily_revenue_per_driver), 1)),
        "daily_revenue_per_driver_yen": result.daily_revenue_per_driver,
        "km_per_shift": m["km_per_shift"],
        "km_per_trip": m["km_per_trip"],
        "requests": int(m["requests"]),
        "served": int(m["served"]),
        "abandoned": int(m["abandoned"]),
        "service_rate": m["service_rate"],
        "timings_s": {k: round(v, 3) for k, v in result.timings.items() if k.endswith("_s")},
    }


def run(
    cfg: DictConfig,
    job_dir: str | Path | None = None,
    on_day: Callable[[int, float], bool] | None = None,
) -> float:
    """Simulate, record, and return the objective (mean revenue per driver-day in yen)."""
    validate(cfg)
    params = sim_params(cfg)
    from experiment.sinks import prepare_sink, write_rows

    prepare_sink(cfg.sink)  # an unreachable sink fails now, not after the simulation
    job_dir = Path(job_dir) if job_dir is not None else Path.cwd()
    t0 = time.perf_counter()
    result = simulate(params, on_day=on_day)
    trial = sweep_context().get("trial")
    summary = summarize(cfg, result, trial)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    run_id = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
    context = {
        "run_id": run_id,
        **sweep_context(),
        "region": str(cfg.region.name),
        "window": str(cfg.window.name),
        "window_start": str(cfg.window.start),
        "demand_source": str(cfg.demand.source),
        "policy": str(cfg.policy.name),
        "params": json.dumps(tuned_params(cfg, trial), sort_keys=True),
        "seed": int(cfg.window.seed),
    }
    rows = dict(result.driver_days)
    first_day = parse_day("window.start", cfg.window.start)  # once: window=rolling resolves it through a resolver
    rows["date"] = [(first_day + dt.timedelta(days=int(d))).isoformat() for d in rows["day"]]
    write_rows(cfg.sink, rows, context)
    m = result.metrics
    log.info(
        "%s | %s | %s demand | %s: %s yen/driver-day, %s yen/shift, %.1f trips/shift, occupancy %.0f%%, "
        "mean fare %s yen (%d drivers, %.1fs)",
        cfg.region.name, cfg.window.name, cfg.demand.source, _who(cfg, context),
        f"{m['objective']:,.0f}", f"{m['revenue_per_driver_shift_yen']:,.0f}", m["trips_per_driver_shift"],
        100 * m["occupancy_distance"], f"{m['mean_fare_yen']:,.0f}", params.n_drivers,
        time.perf_counter() - t0,
    )
    log.info("summary: %s", job_dir / "summary.json")
    return float(m["objective"])

