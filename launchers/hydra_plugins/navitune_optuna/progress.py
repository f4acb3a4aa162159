"""The sweep's live progress: a rich table on a terminal, one log line per change elsewhere."""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
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
    """A live rich table on a terminal (finished with a bar, running, failed, pruned, best, elapsed, ETA, and
    what is happening while no trial has finished); one log line per change elsewhere (logs, CI). The ETA
    counts only trials finished by this run. ``metric_name`` (the study's, e.g. "Revenue per driver-day in
    yen") says what ``best`` is."""

    def __init__(self, n_trials: int, enabled: bool, metric_name: str | None = None) -> None:
        self.n_trials = n_trials
        self.enabled = enabled
        self.metric_name = metric_name
        self.live = None
        self.last: str | None = None
        self.done_at_start: int | None = None
        self.started = time.monotonic()
        self._state: tuple[dict[str, int], str, str] | None = None  # counts, best, ETA of the last update
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.live import Live

                # rendered at each refresh (get_renderable), so elapsed time runs between two results
                self.live = Live(console=console, refresh_per_second=4, transient=False,
                                 get_renderable=self._render)
                self.live.start()
                in_child = weakref.WeakMethod(self._in_child)  # a finished sweep's display may go
                os.register_at_fork(after_in_child=lambda: (in_child() or (lambda: None))())

    def _in_child(self) -> None:
        """A job forked from the sweep (process_pool) must not draw the table: Live routes sys.stdout/stderr
        through itself, and a job's log line would redraw the sweep's table as it was at the fork."""
        if self.live is None:
            return
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            setattr(sys, name, getattr(stream, "rich_proxied_file", stream))
        self.live = None

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
        best_text = "-" if best is None else f"{best:,.6g}"
        of = f" ({self.metric_name})" if self.metric_name and best is not None else ""
        line = (f"finished {done}/{self.n_trials} (pruned {counts['pruned']}), running {counts['running']}, "
                f"failed {counts['failed']}, best {best_text}{of}, ETA {eta}")
        self._state = (dict(counts), best_text, eta)
        if self.live is not None:
            self.live.refresh()
        elif line != self.last:
            log.info(line)
        self.last = line

    def launched(self, n: int) -> None:
        """``n`` jobs were just started: the table says so before their first result."""
        if self._state is not None and n > 0:
            counts, best_text, eta = self._state
            self._state = (dict(counts, running=counts["running"] + n), best_text, eta)
            if self.live is not None:
                self.live.refresh()

    def status(self, counts: dict[str, int]) -> str:
        """What is happening while nothing has finished yet (the table would otherwise sit at 0)."""
        if counts["finished"] > 0:
            return ""
        if counts["running"] == 0:
            return "starting jobs"
        return f"{counts['running']} trial(s) running: the first result comes when one has simulated its window"

    def _render(self) -> Any:
        from rich.text import Text

        if self._state is None:
            return Text("optuna_async: opening the study", style="dim")
        counts, best_text, eta = self._state
        return self._table(counts, best_text, self.elapsed(), eta)

    def _table(self, counts: dict[str, int], best: str, elapsed: float, eta: str) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(title="optuna_async", title_justify="left", expand=False, caption=self.status(counts) or None,
                      caption_justify="left")
        best_column = f"best ({self.metric_name})" if self.metric_name else "best"
        for column in ("finished", "", "running", "failed", "pruned", best_column, "elapsed", "ETA"):
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
