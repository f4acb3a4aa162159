"""The simulator's memory estimate: a pure function config validation can call before any job starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiment.sim.memory import MiB, REGION_SIZES, NetworkSize, estimate_peak_bytes
from experiment.sim.regions import build_region

ROOT = Path(__file__).resolve().parent.parent


def test_region_sizes_match_the_built_networks() -> None:
    for name in ("tokyo_central", "ring_city"):
        net = build_region(name).network
        assert REGION_SIZES[name] == NetworkSize(net.n_nodes, net.n_edges, net.n_zones)


def test_estimate_grows_with_fleet_window_demand_and_network() -> None:
    base = estimate_peak_bytes("tokyo_central", 1000, 7, 1200.0)
    assert estimate_peak_bytes("tokyo_central", 2000, 7, 1200.0) > base
    assert estimate_peak_bytes("tokyo_central", 1000, 14, 1200.0) > base
    assert estimate_peak_bytes("tokyo_central", 1000, 7, 2400.0) > base
    assert estimate_peak_bytes("coquimbo", 1000, 7, 1200.0) > base
    assert estimate_peak_bytes(REGION_SIZES["tokyo_central"], 1000, 7, 1200.0) == base


def test_ten_million_drivers_cannot_fit_this_machine() -> None:
    """Issue 10's ``region.drivers=10000000``: far beyond 24 GiB, so validation can refuse it."""
    assert estimate_peak_bytes("tokyo_central", 10_000_000, 7, 12_000_000.0) > 100 * 1024 * MiB


CHILD = """
import json, sys
from experiment.sim import kernels
kernels.warm_up()
from experiment.sim.simulate import SimParams, simulate
from experiment.tunability import PRODUCTION
region, drivers, days, rph = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
simulate(SimParams(region, drivers, rph, 0, days, 1, policy=PRODUCTION))
# this process's own high-water mark (ru_maxrss would carry the parent's over the exec)
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps(int(hwm) * 1024))
"""


@pytest.mark.slow
@pytest.mark.parametrize("region, drivers, days, rph", [("ring_city", 40, 2, 300.0), ("ring_city", 60_000, 1, 300.0)])
def test_estimate_is_above_the_measured_peak_but_close(region: str, drivers: int, days: int, rph: float) -> None:
    from experiment.sim import kernels

    kernels.warm_up()  # a warm cache: the child loads the kernels (compiling would take more memory)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, region, str(drivers), str(days), str(rph)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    estimate = estimate_peak_bytes(region, drivers, days, rph)
    assert measured <= estimate <= 1.5 * measured, (measured / MiB, estimate / MiB)
