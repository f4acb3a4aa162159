"""What a finished (or stopped) study amounts to, in one place: the MLflow parent run and the Slack message
both report it. Trials failed unrun because a concurrent sweeper asked past the budget do not count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import BASELINE, OVER_BUDGET


@dataclass(frozen=True)
class StudySummary:
    finished: int  # complete + pruned
    complete: int
    pruned: int
    failed: int
    best: Any = None  # the best FrozenTrial (single objective, at least one complete trial), else None
    baseline: Any = None  # the first enqueued baseline's complete trial (``navitune:baseline`` == 0), else None
    improvement_pct: float | None = None  # best vs baseline, positive = better in the study's direction


def summarize(study: Any) -> StudySummary:
    """Counts, the best trial and the improvement of the best over the baseline trial."""
    import optuna
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(OVER_BUDGET)]
    n = {st: sum(1 for t in trials if t.state == st) for st in TrialState}
    counts = dict(finished=n[TrialState.COMPLETE] + n[TrialState.PRUNED], complete=n[TrialState.COMPLETE],
                  pruned=n[TrialState.PRUNED], failed=n[TrialState.FAIL])
    if len(study.directions) != 1 or n[TrialState.COMPLETE] == 0:
        return StudySummary(**counts)
    best = study.best_trial
    base = next((t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get(BASELINE) == 0), None)
    pct = None
    if base is not None and base.value:
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        pct = sign * (best.value - base.value) / abs(base.value) * 100.0
    return StudySummary(**counts, best=best, baseline=base, improvement_pct=pct)
