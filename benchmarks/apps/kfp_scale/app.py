"""The job of ``python -m experiment.bench kfp-scale``: a no-op "simulation" that sleeps and reports each day.

Why this shape: the scale study measures the sweeper, the launcher, the KFP API and the study database, not the
simulator, so the job only imports Hydra (and Optuna, lazily, to report) and sleeps. Its duration is the
log-normal quantile of the trial's ``u`` (mean ``mean_s``, coefficient of variation ``cv``: the spread of the
simulator's 7-day runs, scaled down), split into ``days`` equal parts; after each part it reports one value to
the trial, so the sweep's pruner can stop it. Each job writes one JSON record (CLOCK_MONOTONIC start and end,
slept seconds, pruned or not, and the time each report took to come back with the prune decision) to
``out_dir``: the benchmark measures what the jobs did.
"""

from __future__ import annotations

import json
import math
import os
import time
from statistics import NormalDist

import hydra
from omegaconf import DictConfig


def duration_s(u: float, mean_s: float, cv: float) -> float:
    """The log-normal quantile of u (clipped to [1e-3, 1 - 1e-3]) with the given mean and CV."""
    sigma = math.sqrt(math.log1p(cv * cv))
    mu = math.log(mean_s) - sigma * sigma / 2
    return math.exp(mu + sigma * NormalDist().inv_cdf(min(max(float(u), 1e-3), 1 - 1e-3)))


@hydra.main(config_path=".", config_name="config", version_base=None)
def task(cfg: DictConfig) -> float:
    from hydra_plugins.navitune_optuna.reporting import current_trial

    start = time.monotonic()
    trial = current_trial()
    ready = time.monotonic()
    total = duration_s(cfg.u, float(cfg.mean_s), float(cfg.cv))
    days = int(cfg.days)
    value = (float(cfg.x) - 0.3) ** 2
    latencies_ms: list[float] = []
    pruned, slept = False, 0.0
    for day in range(days):
        time.sleep(total / days)
        slept += total / days
        daily = value + 0.5 / (day + 1)
        if trial is not None:
            t0 = time.monotonic()
            stop = trial.report(day, daily)
            latencies_ms.append((time.monotonic() - t0) * 1e3)
            if stop:
                pruned = True
                break
    end = time.monotonic()
    record = {"x": float(cfg.x), "u": float(cfg.u), "start": start, "ready": ready, "end": end, "slept_s": slept,
              "pruned": pruned, "days_run": len(latencies_ms) if trial is not None else days,
              "prune_latency_ms": latencies_ms, "pid": os.getpid(),
              "trial": int(trial.number) if trial is not None else None}
    with open(os.path.join(str(cfg.out_dir), f"{os.getpid()}_{time.monotonic_ns()}.json"), "w") as fh:
        json.dump(record, fh)
    if pruned:
        import optuna

        raise optuna.TrialPruned(f"pruned after day {len(latencies_ms) - 1}")
    return value


if __name__ == "__main__":
    task()
