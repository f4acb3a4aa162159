"""hydra-optuna-sweeper's example 1 (single objective): the sphere function.

Test knobs: ``sleep_s`` slows a job down; a job that starts while ``hold_file`` exists never ends: it
leaves a ``<hold_file>.held.<pid>`` marker and waits to be killed, so a test can freeze a sweep in a
known state."""

import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config")
def sphere(cfg: DictConfig) -> float:
    if cfg.hold_file and Path(cfg.hold_file).exists():
        Path(f"{cfg.hold_file}.held.{os.getpid()}").touch()
        while True:
            time.sleep(0.1)
    if cfg.sleep_s:
        time.sleep(cfg.sleep_s)
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
