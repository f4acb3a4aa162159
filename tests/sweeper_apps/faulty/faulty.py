"""A task that fails on purpose.

mode: ok | region (raises when x > fail_above) | raise_first / exit_first (raises / os._exit(1) on the
first attempt of each parameter set, remembered by a marker file in marker_dir) | always (raises).
hang_below: when set, a job with x <= hang_below never ends (it waits to be killed)."""

import hashlib
import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig


def _first_attempt(cfg: DictConfig) -> bool:
    key = hashlib.sha1(repr((float(cfg.x), float(cfg.y))).encode()).hexdigest()
    marker = Path(cfg.marker_dir) / key
    marker.parent.mkdir(parents=True, exist_ok=True)
    try:
        marker.open("x").close()
    except FileExistsError:
        return False
    return True


@hydra.main(config_path=".", config_name="config")
def faulty(cfg: DictConfig) -> float:
    if cfg.sleep_s:
        time.sleep(cfg.sleep_s)
    if cfg.hang_below is not None and cfg.x <= cfg.hang_below:
        while True:
            time.sleep(0.1)
    if cfg.mode == "region" and cfg.x > cfg.fail_above:
        raise ValueError(f"navitune-test: x={cfg.x} is in the failing region")
    if cfg.mode == "raise_first" and _first_attempt(cfg):
        raise RuntimeError(f"navitune-test: first attempt of x={cfg.x} y={cfg.y} fails")
    if cfg.mode == "exit_first" and _first_attempt(cfg):
        os._exit(1)
    if cfg.mode == "always":
        raise RuntimeError("navitune-test-boom: this task always fails")
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    faulty()
