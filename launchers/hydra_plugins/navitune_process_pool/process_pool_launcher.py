"""``hydra/launcher=process_pool``: every job in its own forked process, ``n_jobs`` at a time.

A job that crashes, calls ``os._exit`` or is killed fails alone (its JobReturn says how it died); the
sweep goes on. Besides Hydra's batch ``launch``, the launcher offers ``submit`` (one job, a Future) so an
asynchronous sweeper can refill a slot the moment a job finishes; ``prepare_ahead`` jobs beyond ``n_jobs``
are set up while the slots are busy (config, job directory, logging) and start the moment a slot frees.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.navitune_shared.protocol import default_prepare_ahead
from hydra_plugins.navitune_shared.errors import invalid
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


TARGET = "hydra_plugins.navitune_process_pool.process_pool_launcher.ProcessPoolLauncher"


@dataclass
class ProcessPoolLauncherConf:
    _target_: str = TARGET
    n_jobs: int = 2  # jobs running at the same time: at most 4 per CPU core
    timeout_s: float | None = None  # a job running longer is killed and fails
    # jobs set up ahead (process, config, job directory, logging) that wait for a slot, so a slot is refilled
    # the moment a job ends; an asynchronous sweeper (optuna_async) asks this many trials ahead.
    # null: 1 + n_jobs // 4 (the more slots, the more often one ends while a job is being set up)
    prepare_ahead: int | None = None


ConfigStore.instance().store(
    group="hydra/launcher", name="process_pool", node=ProcessPoolLauncherConf, provider="navitune"
)


JOBS_PER_CORE = 4  # jobs may wait (study storage, MLflow, sink, sleeps); beyond that they only queue for CPU and hold memory


class LauncherConfigError(CompactHydraException, ValueError):
    """A launcher setting it cannot run with; Hydra prints just this one line."""


def max_jobs() -> int:
    """The most jobs this machine runs at once: JOBS_PER_CORE per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return JOBS_PER_CORE * max(1, cores)


def check_settings(n_jobs: Any, timeout_s: Any = None, prepare_ahead: Any = None) -> None:
    """Raise one line for a setting the launcher cannot run with (also an app's preflight, before Hydra writes)."""
    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    most = max_jobs()
    if not whole(n_jobs) or not 0 < n_jobs <= most:
        raise invalid(LauncherConfigError, "process_pool", "hydra.launcher.n_jobs", n_jobs,
                      f"a whole number in [1, {most}] ({JOBS_PER_CORE} per CPU core of this machine; "
                      "hydra/launcher=kfp with backend=remote runs more)")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool)
                                      and float(timeout_s) > 0):
        raise invalid(LauncherConfigError, "process_pool", "hydra.launcher.timeout_s", timeout_s,
                      "null (no limit) or seconds > 0")
    if prepare_ahead is not None and (not whole(prepare_ahead) or not 0 <= prepare_ahead <= most):
        raise invalid(LauncherConfigError, "process_pool", "hydra.launcher.prepare_ahead", prepare_ahead,
                      f"null (1 + n_jobs // 4) or a whole number in [0, {most}]")


def preflight(config: DictConfig) -> str | None:
    """The one-line problem of a composed config (hydra node included) whose launcher is process_pool, else None."""
    node = OmegaConf.select(config, "hydra.launcher", default=None)
    if node is None or OmegaConf.select(node, "_target_", default=None) != TARGET:
        return None
    try:
        check_settings(node.get("n_jobs"), node.get("timeout_s"), node.get("prepare_ahead"))
    except LauncherConfigError as err:
        return str(err)
    return None


class ProcessPoolLauncher(Launcher):
    """Thin Hydra front end of :class:`~._process_pool_core.JobPool`."""

    def __init__(self, n_jobs: int = 2, timeout_s: float | None = None, prepare_ahead: int | None = None) -> None:
        check_settings(n_jobs, timeout_s, prepare_ahead)
        self.n_jobs = int(n_jobs)
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        self.prepare_ahead = default_prepare_ahead(self.n_jobs) if prepare_ahead is None else prepare_ahead
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        self._pool = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _job_pool(self):
        from ._process_pool_core import JobPool

        if self._pool is None:
            assert self.config is not None and self.hydra_context is not None and self.task_function is not None
            self._pool = JobPool(self.hydra_context, self.task_function, self.config, self.n_jobs, self.timeout_s,
                                 self.prepare_ahead)
        return self._pool

    @property
    def prepared(self) -> int:
        """Jobs set up ahead that wait for a slot (an asynchronous sweeper does not count them as running)."""
        return 0 if self._pool is None else self._pool.prepared

    def submit(self, overrides: Sequence[str], job_idx: int) -> "Future[JobReturn]":
        """Start one job (when a slot is free); the Future resolves to its JobReturn."""
        return self._job_pool().submit(list(overrides), job_idx)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ._process_pool_core import launch_batch

        return launch_batch(self._job_pool(), job_overrides, initial_job_idx)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
