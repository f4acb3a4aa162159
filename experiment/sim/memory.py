"""How much memory a simulation needs, before it runs: so a config can be refused instead of a job dying.

:func:`estimate_peak_bytes` is a pure function of the network's size, the fleet, the window and the
demand. Its terms follow what the simulator allocates (see the comments); the coefficients were measured
with ``ru_maxrss`` on x86_64 (NumPy 2.4, Numba 0.68) and the estimate stays above the measured peak,
by 2 to 17 %: tokyo_central 1,000 drivers 7 days 306 MiB estimated / 262 measured; coquimbo 587 / 534;
ring_city with 300,000 drivers for 2 days 385 / 330, with 100,000 for 1 day 243 / 223; ring_city 40
drivers 1 day 210 / 206 (the base process dominates). Since the scenario calendar (issue 13) the base process
measures 205-245 MiB depending on the machine (243 MiB on the CI runner), so the base term is 256 MiB
(the figures above are about 55 MiB higher now; the estimate errs high, which only refuses absurd sizes sooner).
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
#: the interpreter with NumPy, SciPy, Numba and the compiled kernels loaded (VmHWM of a tiny run)
BASE_BYTES = 256 * MiB  # measured 205-245 MiB (tests/test_sim_memory.py; 243 on CI) with the scenario calendar and kernels


@dataclass(frozen=True)
class NetworkSize:
    n_nodes: int
    n_edges: int
    n_zones: int


#: sizes of the built-in regions (network_seed 0; other seeds differ by a few per cent)
REGION_SIZES: dict[str, NetworkSize] = {
    "tokyo_central": NetworkSize(2986, 9702, 80),
    "ring_city": NetworkSize(1153, 4029, 41),
    "coquimbo": NetworkSize(15492, 34037, 133),
}


def estimate_peak_bytes(
    network: NetworkSize | str, n_drivers: int, n_days: int, requests_per_hour: float | None = None
) -> int:
    """Estimated peak resident memory (bytes) of one simulation process.

    ``network`` is a :class:`NetworkSize` or the name of a built-in region; ``requests_per_hour``
    defaults to 2.4 per driver (the busiest calibrated region). Covers the simulator only (not a
    result sink's own buffers).
    """
    net = REGION_SIZES[network] if isinstance(network, str) else network
    if requests_per_hour is None:
        requests_per_hour = 2.4 * n_drivers
    slots = 48 * (n_days + 1)  # 30-minute slots, with one extra day for the last shifts' tails
    n_dest = 3 * net.n_zones + 4  # destination candidates per zone plus expressway gateways
    # Dijkstra to every destination: times, predecessors and the pointer-jumping arrays at once
    paths_transient = 48 * n_dest * net.n_nodes
    paths_kept = 16 * n_dest * net.n_nodes  # fastest-path times and lengths
    demand = 24 * slots * net.n_nodes  # true rates, history, forecast, blends (float32)
    planning = 6 * slots * net.n_edges + 192 * net.n_edges  # uint16 choice counts + per-slot work arrays
    passengers = int(250 * requests_per_hour * 24 * (n_days + 1))  # draws, prices, queues, trip log
    drivers = 100 * n_drivers + 250 * n_drivers * n_days  # engine state + shifts, accumulators, rows
    return BASE_BYTES + max(paths_transient, paths_kept + demand + planning + passengers + drivers)
