"""Reporting to the Optuna trial a sweep launched this job for: daily revenue as intermediate values.

Outside a sweep there is no trial and nothing is reported. When the trial's pruner says stop, the
simulation ends after that day and the job raises ``optuna.TrialPruned``, which the sweeper records as
a pruned (finished) trial.
"""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger("navitune")


def daily_reporter() -> Callable[[int, float], bool] | None:
    """An ``on_day(day, revenue_per_driver_day_so_far)`` callback for the simulator, or None."""
    try:
        from hydra_plugins.navitune_optuna.reporting import current_trial
    except ImportError:  # the sweeper plugin is not installed
        return None
    trial = current_trial()
    if trial is None:
        return None

    def on_day(day: int, value: float) -> bool:
        if trial.report(day, value):
            log.info("trial %d pruned after day %d (%.0f yen/driver-day so far)", trial.number, day + 1, value)
            import optuna

            raise optuna.TrialPruned(f"pruned after day {day + 1}")
        return False

    return on_day
