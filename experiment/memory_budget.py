"""The memory budget: one simulation's estimated peak memory against what this machine has, before anything runs.

One estimate of a simulation's peak memory, the simulator's own (``experiment.sim.memory``, measured against
the compiled engine by ``tests/test_sim_memory.py``), checked by the CLI's preflight (``experiment.preflight``).
It lives apart from the schemas (``experiment.config``) because it reads the machine, not the config's rules.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from experiment.config import demand_factors, parse_day, scenario_from_config
from experiment.errors import ConfigError
from experiment.sim.memory import REGION_SIZES, estimate_peak_bytes

MEMORY_LIMIT_ENV = "NAVITUNE_MEMORY_LIMIT_MIB"  # the memory budget of this machine's jobs, instead of what is free


@dataclass(frozen=True)
class JobSize:
    """What one simulation job holds, and its estimated peak memory."""

    region: str
    drivers: int
    days: int
    requests_per_hour: float  # after scaling to window.drivers and by the scenario's busiest day
    mib: float
    demand_factor: float = 1.0  # the scenario's highest daily demand factor in the window (in requests_per_hour)


def job_size(cfg: Any) -> JobSize:
    """The estimated peak memory of one simulation of a validated config. The scenario's busiest day counts: its
    demand factor scales the requests (the passengers' arrays); its fleet factor does not (a day's working drivers
    are a share of the fleet, never more)."""
    r, w = cfg.region, cfg.window
    days = (parse_day("window.end", w.end) - parse_day("window.start", w.start)).days
    drivers = min(int(w.drivers), int(r.drivers)) if w.drivers is not None else int(r.drivers)
    factor = 1.0
    node = cfg.get("scenario") if hasattr(cfg, "get") else getattr(cfg, "scenario", None)
    if node is not None:
        start = parse_day("window.start", w.start)
        factor = max(1.0, demand_factors(scenario_from_config(node), start, days + 1)[2])
    rph = float(r.requests_per_hour) * drivers / int(r.drivers) * factor  # a capped fleet: same demand per driver
    network = str(r.name) if str(r.name) in REGION_SIZES else max(REGION_SIZES.values(), key=lambda n: n.n_nodes)
    mib = estimate_peak_bytes(network, drivers, days, rph) / 2**20
    return JobSize(str(r.name), drivers, days, rph, mib, factor)


def available_mib() -> float:
    """Memory the jobs may use: ``NAVITUNE_MEMORY_LIMIT_MIB`` if set, else what the machine (and its cgroup)
    has available now."""
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"navitune: invalid {MEMORY_LIMIT_ENV}={text!r}; allowed: MiB > 0, or unset (the "
                              "machine's available memory)")
        return value
    have = [_meminfo_available_mib(), _cgroup_available_mib()]
    known = [h for h in have if h is not None]
    return min(known) if known else float("inf")


def _meminfo_available_mib() -> float | None:
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _cgroup_available_mib() -> float | None:
    """cgroup v2 limit minus usage (a container's memory limit), or None without a limit."""
    try:
        limit = open("/sys/fs/cgroup/memory.max", encoding="ascii").read().strip()
        used = open("/sys/fs/cgroup/memory.current", encoding="ascii").read().strip()
    except OSError:
        return None
    if not limit.isdigit() or not used.isdigit():
        return None
    return (int(limit) - int(used)) / 2**20


def check_memory(cfg: Any, jobs: int = 1, key: str = "hydra.launcher.n_jobs") -> None:
    """Refuse, in one line, a run (or ``jobs`` runs at once on this machine) over the available memory."""
    size, have = job_size(cfg), available_mib()
    if jobs * size.mib <= have:
        return
    busiest = f" (the scenario's busiest day: {size.demand_factor:.3g} x demand)" if size.demand_factor > 1 else ""
    what = (f"region={size.region} with {size.drivers} drivers and {size.requests_per_hour:g} requests/h{busiest} "
            f"over {size.days} days needs ~{size.mib:,.0f} MiB (estimate)")
    budget = f"{have:,.0f} MiB available ({MEMORY_LIMIT_ENV} sets another budget)"
    most = int(have // size.mib)
    if most >= 1:
        raise ConfigError(f"navitune: invalid {key}={jobs}: {jobs} jobs at once, each {what}, need ~"
                          f"{jobs * size.mib:,.0f} MiB, {budget}; allowed: at most {most} jobs at once")
    raise ConfigError(f"navitune: run too large: {what}, {budget}; allowed: a run of at most {have:,.0f} MiB "
                      "(fewer region.drivers or window.drivers, a lower region.requests_per_hour, a shorter window)")
