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
    # share of n_trials allowed to fail for good (after retries): the sweep stops, non-zero, once more than
    # floor(max_failure_rate * n_trials) did (so after at most n_trials + 1 such trials, even at 1.0)
    max_failure_rate: float = 0.0
    params: dict[str, str] | None = None
    custom_search_space: str | None = None

    # --- navitune's additions
    # a failed trial is tried again with the same parameters up to this many times; not once two attempts
    # failed the same way (error type and message, digits aside), nor after a job returned a value the
    # study cannot take
    max_retries: int = 2
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner, n_startup_trials: 5}
    # trials to run first (e.g. production values): enqueued once per study, however many sweepers share it
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    stale_after_s: float = 300.0  # a RUNNING trial of a dead sweeper (or silent this long) is failed and retried
    progress: bool = True  # live progress display (rich)
    # names of the objectives (one per direction), shown by optuna-dashboard and Optuna's plots instead of
    # "Objective 0"; null: unnamed
    metric_names: list[str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna_async", node=AsyncOptunaSweeperConf, provider="navitune"
)
