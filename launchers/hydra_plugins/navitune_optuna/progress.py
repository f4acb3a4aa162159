"""The sweep's live progress: a rich table on a terminal, one log line per change elsewhere."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger("hydra_plugins.navitune_optuna._core")


def best_value(trials: Sequence[FrozenTrial], directions: list[Any]) -> float | None:
    """The best value among completed trials (single objective), from a trial list already at hand."""
    if len(directions) != 1:
        return None
    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not values:
        return None
    maximize = str(directions[0]).lower() == "maximize"  # names, as hydra-optuna-sweeper gives them
    return float(max(values) if maximize else min(values))


class Progress:
    """A live rich table on a terminal (finished with a bar, running, failed, pruned, best, ETA); one log
    line per change elsewhere (logs, CI). The ETA counts only trials finished by this run."""

    def __init__(self, n_trials: int, enabled: bool) -> None:
        self.n_trials = n_trials
        self.enabled = enabled
        self.live = None
        self.last: str | None = None
        self.done_at_start: int | None = None
        self.started = time.monotonic()
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.live import Live

                self.live = Live(console=console, refresh_per_second=4, transient=False)
                self.live.start()

    def elapsed(self) -> float:
        """Seconds since the display started (the sweep's run in this process)."""
        return time.monotonic() - self.started

    def update(self, counts: dict[str, int], best: float | None, elapsed: float) -> None:
        if not self.enabled:
            return
        done = counts["finished"]
        if self.done_at_start is None:
            self.done_at_start = done
        new = done - self.done_at_start
        eta = f"{elapsed / new * (self.n_trials - done):.0f} s" if new > 0 else "-"
        best_text = "-" if best is None else f"{best:.6g}"
        line = (f"finished {done}/{self.n_trials} (pruned {counts['pruned']}), running {counts['running']}, "
                f"failed {counts['failed']}, best {best_text}, ETA {eta}")
        if self.live is not None:
            self.live.update(self._table(counts, best_text, elapsed, eta))
        elif line != self.last:
            log.info(line)
        self.last = line

    def _table(self, counts: dict[str, int], best: str, elapsed: float, eta: str) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(title="optuna_async", title_justify="left", expand=False)
        for column in ("finished", "", "running", "failed", "pruned", "best", "elapsed", "ETA"):
            table.add_column(column, justify="right")
        table.add_row(
            f"{counts['finished']}/{self.n_trials}",
            ProgressBar(total=self.n_trials, completed=counts["finished"], width=24),
            str(counts["running"]), str(counts["failed"]), str(counts["pruned"]), best, f"{elapsed:.0f} s", eta,
        )
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
