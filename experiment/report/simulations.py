"""The report's simulations, in spawned worker processes."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

log = logging.getLogger("navitune.report")


def _simulate(params: Any) -> dict[str, float]:
    """One simulation in a worker process: only the summary metrics travel back (not the per-driver arrays)."""
    from experiment.sim.simulate import simulate

    result = simulate(params)
    return {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}



def run_simulations(params: Sequence[Any], workers: int) -> list[dict[str, float]]:
    """Simulate every SimParams, ``workers`` at a time in fresh (spawned) processes: a sweep process may hold
    threads and open stores, which a forked child would inherit half-way."""
    if workers <= 1 or len(params) <= 1:
        return [_simulate(p) for p in params]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list[dict[str, float] | None] = [None] * len(params)
    done, t0 = 0, time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_simulate, p): i for i, p in enumerate(params)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                done += 1
                if done % max(1, len(params) // 5) == 0 or done == len(params):
                    log.info("champion/challenger report: %d/%d simulations done (%.0f s)", done, len(params),
                             time.perf_counter() - t0)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return [r for r in results if r is not None]
