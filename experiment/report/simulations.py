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



class SimulationPool:
    """``workers`` fresh (spawned) processes kept for several batches of simulations, e.g. the sequential
    decision's looks: each look then costs its simulations, not a new pool's start-up. A sweep process may hold
    threads and open stores, which a forked child would inherit half-way, hence spawn."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None

    def __enter__(self) -> "SimulationPool":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def run(self, params: Sequence[Any]) -> list[dict[str, float]]:
        """Simulate every SimParams (in this process with one worker or one simulation), in order."""
        if self.workers <= 1 or (len(params) <= 1 and self._pool is None):
            return [_simulate(p) for p in params]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        results: list[dict[str, float] | None] = [None] * len(params)
        done, t0 = 0, time.perf_counter()
        futures = {self._pool.submit(_simulate, p): i for i, p in enumerate(params)}
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


def run_simulations(params: Sequence[Any], workers: int) -> list[dict[str, float]]:
    """Simulate every SimParams, ``workers`` at a time in fresh (spawned) processes (one pool for this batch)."""
    with SimulationPool(workers if len(params) > 1 else 1) as pool:
        return pool.run(params)
