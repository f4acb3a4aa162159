"""A generic Hydra app for ``benchmarks/sweep.py``: sleep for a duration set by ``x``, or do nothing.

The job's duration is the log-normal quantile of ``x`` (with a random sampler, x ~ U(0, 1), so durations
are log-normal with mean ``mean_s`` and coefficient of variation ``cv``); the same ``x`` gives the same
duration whichever sweeper asked for it. Each job writes its own start and end times (CLOCK_MONOTONIC,
shared by all processes of the machine) and pid to ``out_dir``, so the benchmark measures what the jobs
did rather than what they were asked to do.
"""

from __future__ import annotations

import json
import math
import os
import time
from statistics import NormalDist

import hydra
from omegaconf import DictConfig


def duration_s(x: float, mean_s: float, cv: float) -> float:
    """The log-normal quantile of x (clipped to [1e-4, 1 - 1e-4]) with the given mean and CV."""
    sigma = math.sqrt(math.log1p(cv * cv))
    mu = math.log(mean_s) - sigma * sigma / 2
    q = min(max(float(x), 1e-4), 1 - 1e-4)
    return math.exp(mu + sigma * NormalDist().inv_cdf(q))


@hydra.main(config_path=".", config_name="config")
def task(cfg: DictConfig) -> float:
    start = time.monotonic()
    x = float(cfg.x)
    want = 0.0 if cfg.noop else duration_s(x, float(cfg.mean_s), float(cfg.cv))
    if want > 0:
        time.sleep(want)
    end = time.monotonic()
    record = {"x": x, "requested_s": want, "start": start, "end": end, "pid": os.getpid()}
    with open(os.path.join(str(cfg.out_dir), f"{os.getpid()}_{time.monotonic_ns()}.json"), "w") as fh:
        json.dump(record, fh)
    return (x - 0.3) ** 2


if __name__ == "__main__":
    task()
