"""``hydra/sweeper=optuna_async``: the thin Hydra front end; the logic is in ``_core``."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config as config  # noqa: F401  (registers the config)


class AsyncOptunaSweeper(Sweeper):
    """Asynchronous, budget-exact, resumable Optuna sweeper with retries and pruning."""

    def __init__(self, **kwargs: Any) -> None:
        from ._core import AsyncOptunaSweeperImpl

        self.sweeper = AsyncOptunaSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
