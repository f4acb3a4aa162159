"""The sweeper's live progress display: what it shows (rendered by rich, read back as text)."""

from __future__ import annotations

import logging

import pytest
from rich.console import Console

from hydra_plugins.navitune_optuna._core import _Progress

COUNTS = {"finished": 12, "complete": 10, "pruned": 2, "running": 3, "failed": 1}


def test_table_shows_counts_best_and_eta() -> None:
    progress = _Progress(n_trials=30, enabled=True)  # not a terminal under pytest: no live display
    progress.update({**COUNTS, "finished": 4, "pruned": 0}, None, elapsed=1.0)  # this run starts at 4
    console = Console(record=True, width=120)
    console.print(progress._table(COUNTS, "61234.5", 40.0, "40 s"))
    text = console.export_text()
    for expected in ("finished", "running", "failed", "pruned", "best", "ETA", "12/30", "61234.5", "40 s"):
        assert expected in text, text


def test_log_line_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    progress = _Progress(n_trials=30, enabled=True)
    with caplog.at_level(logging.INFO):
        progress.update({**COUNTS, "finished": 10}, 5.0, elapsed=10.0)  # 10 finished before this run
        progress.update(COUNTS, 4.25, elapsed=20.0)  # 2 new in 20 s: 18 to go at 10 s each
        progress.update(COUNTS, 4.25, elapsed=20.0)  # the same line again is not logged twice
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "finished 10/30 (pruned 2), running 3, failed 1, best 5, ETA -",
        "finished 12/30 (pruned 2), running 3, failed 1, best 4.25, ETA 180 s",
    ]
