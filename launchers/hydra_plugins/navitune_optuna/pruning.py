"""The study's pruner from ``hydra.sweeper.pruner``, built in one place for the sweeper and for the jobs, so both
judge a trial alike."""

from __future__ import annotations

from typing import Any, Sequence


def make_pruner(conf: Any, whitelist: Sequence[str] = ("optuna.pruners.*",)) -> Any:
    """The configured pruner. ``null`` means no pruning: Optuna itself would put its MedianPruner in the place of
    ``None`` (``create_study`` and ``load_study``), so a sweep set to prune nothing pruned anyway."""
    import optuna
    from hydra.utils import instantiate

    if not conf:
        return optuna.pruners.NopPruner()
    return instantiate(conf, _execution_whitelist_=tuple(whitelist))
