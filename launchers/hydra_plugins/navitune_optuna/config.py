"""Config of ``hydra/sweeper=optuna_async``: every hydra-optuna-sweeper setting, plus retries, pruning,
baseline trials and stale-trial recovery. Samplers are hydra-optuna-sweeper's (``hydra/sweeper/sampler``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import Direction, SamplerConfig
from omegaconf import MISSING


@dataclass
class AsyncOptunaSweeperConf:
    _target_: str = "hydra_plugins.navitune_optuna.optuna_async_sweeper.AsyncOptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    # --- the settings of hydra-optuna-sweeper, same meaning (n_trials: see below)
    sampler: SamplerConfig = MISSING
    direction: Any = Direction.minimize
    storage: Any = None  # an RDB URL, "journal:///path/file.journal" (a file safe for parallel writers), or None (memory)
    study_name: str | None = None
    n_trials: int = 20  # finished (complete or pruned) trials the study should hold in total, across restarts
    n_jobs: int = 2  # trials in flight at once
    max_failure_rate: float = 0.0  # share of n_trials allowed to fail for good (after retries)
    params: dict[str, str] | None = None
    custom_search_space: str | None = None

    # --- navitune's additions
    max_retries: int = 2  # a failed trial is tried again with the same parameters this many times
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner, n_startup_trials: 5}
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # trials to run first (e.g. production values)
    stale_after_s: float = 300.0  # a RUNNING trial of a dead sweeper (or silent this long) is failed and retried
    progress: bool = True  # live progress display (rich)


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna_async", node=AsyncOptunaSweeperConf, provider="navitune"
)
