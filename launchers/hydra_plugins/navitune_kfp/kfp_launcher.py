"""``hydra/launcher=kfp``: each job of a sweep as a Kubeflow Pipelines v2 run of one pipeline compiled per sweep.

``backend=local`` runs the compiled component on this machine with ``kfp.local`` (no cluster);
``backend=remote`` submits runs to a KFP API with ``kfp.Client``. Like ``process_pool``, the launcher offers
``submit`` (one job, a Future) besides Hydra's batch ``launch``, so an asynchronous sweeper keeps ``n_jobs``
runs in flight. kfp is imported only when a sweep uses this launcher: Hydra imports every plugin module at
each start.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .settings import KFPLauncherConf, check


ConfigStore.instance().store(group="hydra/launcher", name="kfp", node=KFPLauncherConf, provider="navitune")


class KFPLauncher(Launcher):
    """Thin Hydra front end of :class:`~._core.KFPLauncherCore`."""

    def __init__(self, **kwargs: Any) -> None:
        self.settings = check(kwargs)  # one-line KFPConfigError before anything else happens
        self.n_jobs = self.settings.n_jobs
        self.prepare_ahead = self.settings.prepare_ahead
        self._core: Any = None

    @property
    def prepared(self) -> int:
        """Jobs submitted and composed that wait for one of the n_jobs slots (not running yet)."""
        return self._core.prepared if self._core is not None else 0

    @property
    def compile_only(self) -> bool:
        return self.settings.compile_only

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from ._core import KFPLauncherCore

        self._core = KFPLauncherCore(self.settings, hydra_context, task_function, config)

    def submit(self, overrides: Sequence[str], job_idx: int) -> "Future[JobReturn]":
        """Start one job as a KFP run (when one of the n_jobs slots is free); the Future resolves to its JobReturn."""
        return self._core.submit(list(overrides), job_idx)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self._core.launch(job_overrides, initial_job_idx)

    def shutdown(self) -> None:
        if self._core is not None:
            self._core.shutdown()
