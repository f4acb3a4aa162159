"""The sweeper's progress display, read from a real sweep: what it last said agrees with the study."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hydra_plugins.navitune_optuna.progress import Progress
from tests.test_optuna_async_sweeper import journal, journal_trials, run, states

LINE = re.compile(r"finished (\d+)/(\d+) \(pruned (\d+)\), running (\d+), failed (\d+), best (\S+?)"
                  r"(?: \([^)]*\))?, ETA (\S+)")


@pytest.mark.slow
def test_the_last_progress_line_of_a_real_sweep_is_the_studys_final_state(tmp_path: Path) -> None:
    """A sweep in which some trials fail (x > 1 raises, no retries): the display's last line (the log form, as
    under CI; a terminal gets the rich table from the same counts) says what the study holds at the end."""
    store = tmp_path / "study.journal"
    r = run("faulty", tmp_path, "unused", journal(store), "hydra.sweeper.n_trials=10", "mode=region",
            "fail_above=1.0", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.max_retries=0")
    lines = [m for m in (LINE.search(line) for line in (r.stdout + r.stderr).splitlines()) if m]
    assert lines, r
    done, total, pruned, running, failed, best, _eta = lines[-1].groups()
    trials = journal_trials(store, "faulty")
    c = states(trials)
    assert (int(done), int(total)) == (c[TrialState.COMPLETE] + c[TrialState.PRUNED], 10)
    assert (int(pruned), int(running), int(failed)) == (c[TrialState.PRUNED], 0, c[TrialState.FAIL])
    complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
    assert complete and c[TrialState.FAIL] > 0  # the case is the one meant: some trials failed, some did not
    assert float(best.replace(",", "")) == pytest.approx(min(complete), rel=1e-5)


def test_log_line_when_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    counts = {"finished": 12, "complete": 10, "pruned": 2, "running": 3, "failed": 1}
    progress = Progress(n_trials=30, enabled=True)
    with caplog.at_level(logging.INFO):
        progress.update({**counts, "finished": 10}, 5.0, elapsed=10.0)  # 10 finished before this run
        progress.update(counts, 4.25, elapsed=20.0)  # 2 new in 20 s: 18 to go at 10 s each
        progress.update(counts, 4.25, elapsed=20.0)  # the same line again is not logged twice
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "finished 10/30 (pruned 2), running 3, failed 1, best 5, ETA -",
        "finished 12/30 (pruned 2), running 3, failed 1, best 4.25, ETA 180 s",
    ]


def test_best_has_its_unit_and_the_table_says_what_happens_before_the_first_result() -> None:
    """``best`` is named by the study's metric (the unit is in it) and written with thousands separators; while
    no trial has finished the table says whether jobs are starting or running, and its elapsed time runs."""
    import io

    from rich.console import Console

    name = "Revenue per driver-day in yen"
    progress = Progress(n_trials=30, enabled=True, metric_name=name)
    progress.update({"finished": 3, "complete": 3, "pruned": 0, "running": 2, "failed": 0}, 34627.317, 9.0)
    assert progress.last is not None and f"best 34,627.3 ({name}), ETA" in progress.last
    m = LINE.search(progress.last)
    assert m is not None and m.group(6) == "34,627.3"

    def shown(p: Progress) -> str:
        out = io.StringIO()
        Console(file=out, width=220, color_system=None).print(p._render())
        return out.getvalue()

    fresh = Progress(n_trials=30, enabled=True, metric_name=name)
    assert "opening the study" in shown(fresh)
    fresh.update({"finished": 0, "complete": 0, "pruned": 0, "running": 0, "failed": 0}, None, 0.0)
    assert "starting jobs" in shown(fresh) and f"best ({name})" in shown(fresh)
    fresh.launched(2)
    fresh.started -= 7  # seven seconds later, no result yet
    text = shown(fresh)
    assert "2 trial(s) running" in text and "7 s" in text and "0/30" in text
    fresh.update({"finished": 1, "complete": 1, "pruned": 0, "running": 2, "failed": 0}, 33000.0, 8.0)
    assert "running:" not in shown(fresh) and "starting jobs" not in shown(fresh)
