"""hydra-optuna-sweeper's example 1 (single objective): the sphere function.

Test knobs: ``sleep_s`` slows a job down; a job that starts while ``hold_file`` exists never ends: it
leaves a ``<hold_file>.held.<pid>`` marker and waits to be killed, so a test can freeze a sweep in a
known state. ``error=true`` raises (as upstream's example does); ``write_kb`` writes that much into the
job's output directory (to fill a small disk)."""

import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config")
def sphere(cfg: DictConfig) -> float:
    if cfg.hold_file and Path(cfg.hold_file).exists():
        Path(f"{cfg.hold_file}.held.{os.getpid()}").touch()
        while True:
            time.sleep(0.1)
    if cfg.sleep_s:
        time.sleep(cfg.sleep_s)
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    if cfg.get("write_kb", 0):
        Path(HydraConfig.get().runtime.output_dir, "blob.bin").write_bytes(b"\0" * 1024 * int(cfg.write_kb))
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
