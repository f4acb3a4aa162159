"""Retries and failures: what recording a job's result does to its trial (told complete, pruned, failed and
enqueued again, or failed for good), and when failures stop the sweep (too many failed for good, a full disk).

A module of its own because it is the sweep's policy (``max_retries``, ``max_failure_rate``, the same error
twice, the one line a stopped sweep ends with), separate from the loop that applies it (``_core``); what a
return value or an error means is ``failures``.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra_plugins.navitune_shared.errors import error_line
from hydra_plugins.navitune_shared.protocol import ATTEMPT, BASELINE, LAST_ERROR, RETRY_OF
from optuna.trial import TrialState

from .failures import Outcome, disk_full, objective_values, signature

log = logging.getLogger("hydra_plugins.navitune_optuna._core")  # the sweeper's log lines, as before the split


class SweepStopped(CompactHydraException):
    """The sweep stopped early (too many failures, a full disk), reported on one line."""


class DiskFull(SweepStopped):
    """A job ran out of disk space: its trial and those in flight run again on the next run."""


def tell_unless_finished(study: optuna.Study, trial: Any, **kwargs: Any) -> bool:
    """``study.tell`` that returns False when the trial was already finished (by a sweeper that judged it
    stale) and ignores the ``Study.stop`` that GridSampler calls outside ``optimize`` once the grid is
    done (the trial's state is stored before it)."""
    try:
        study.tell(trial, **kwargs)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    except ValueError as err:
        if "Cannot tell a" in str(err):
            return False
        raise
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise
    return True


class RetryPolicy:
    """A sweep's retries (``max_retries`` per trial) and failures (``max_failure_rate``), and the first
    trial that failed for good (for the line a stopped sweep ends with)."""

    def __init__(self, max_retries: int, max_failure_rate: float) -> None:
        self.max_retries = max_retries
        self.max_failure_rate = float(max_failure_rate)
        self.first_failure: str | None = None  # "trial N: why", for the line a stopped sweep ends with

    def enqueue_again(self, study: optuna.Study, number: int, params: dict, attrs: dict,
                      same_attempt: bool = False, error: str | None = None) -> bool:
        """Enqueue a trial's parameters again: as its next attempt (a retry, up to max_retries, remembering
        the signature of the ``error`` it failed with) or, after a lost sweeper, as the same attempt."""
        attempt = int(attrs.get(ATTEMPT, 0))
        if not same_attempt:
            if attempt >= self.max_retries:
                return False
            attempt += 1
        extra = {k: v for k, v in attrs.items() if k in (BASELINE, LAST_ERROR)}
        if error is not None:
            extra[LAST_ERROR] = error
        study.enqueue_trial(
            params, user_attrs={ATTEMPT: attempt, RETRY_OF: int(attrs.get(RETRY_OF, number))} | extra,
            skip_if_exists=False,
        )
        return True

    def outcome(self, study: optuna.Study, trial: optuna.Trial, attrs: dict[str, Any], ret: JobReturn,
                n_objectives: int) -> Outcome:
        """Record a job's result and say what that did (:class:`Outcome`; ``LOST``: another sweeper had
        already failed the trial as stale and runs it again). ``attrs``: the trial's user attributes when it
        was asked for. Raises DiskFull for a job that ran out of disk space (the loop fails the trial as
        stopped and enqueues it again)."""
        attempt = int(attrs.get(ATTEMPT, 0))
        if ret.status == JobStatus.COMPLETED:
            try:
                values = objective_values(ret.return_value, n_objectives)
            except ValueError as err:  # it ran to its end: it would return the same again, no retry
                return self.failed_for_good(study, trial, f"the job {err}")
            return Outcome.COMPLETE if tell_unless_finished(study, trial, values=values) else Outcome.LOST
        error = ret._return_value
        if type(error).__name__ == "TrialPruned":
            return Outcome.PRUNED if tell_unless_finished(study, trial, state=TrialState.PRUNED) else Outcome.LOST
        text = error_line(error)
        if disk_full(error):
            log.warning(f"Trial {trial.number} (attempt {attempt + 1}) stopped: {text}")
            raise DiskFull(f"optuna_async: the disk is full (trial {trial.number}: {text}): stopping the sweep; "
                           f"its trials in flight run again when the same command runs with room on the disk")
        sig = signature(error)
        if attrs.get(LAST_ERROR) == sig:
            return self.failed_for_good(study, trial, f"failed the same way twice: {text}", attempt)
        log.warning(f"Trial {trial.number} (attempt {attempt + 1}) failed: {text}")
        if not tell_unless_finished(study, trial, state=TrialState.FAIL):
            return Outcome.LOST
        if self.enqueue_again(study, trial.number, trial.params, attrs, error=sig):
            return Outcome.RETRIED
        self.first_failure = self.first_failure or f"trial {trial.number}: {text}"
        return Outcome.FAILED

    def failed_for_good(self, study: optuna.Study, trial: optuna.Trial, why: str, attempt: int = 0) -> Outcome:
        log.warning(f"Trial {trial.number} (attempt {attempt + 1}) failed for good: {why}")
        self.first_failure = self.first_failure or f"trial {trial.number}: {why}"
        return Outcome.FAILED if tell_unless_finished(study, trial, state=TrialState.FAIL) else Outcome.LOST

    def allowed_failures(self, n_trials: int) -> int:
        """Trials that may fail for good before the sweep stops: floor(max_failure_rate * n_trials)."""
        return int(self.max_failure_rate * n_trials)

    def too_many_failures(self, failures: int, allowed: int, complete: int, n_trials: int) -> str:
        """The one line a sweep stopped by failures ends with (``complete``: the trials completed). Failures
        a sweep tolerates (every one, at max_failure_rate=1.0) are not its error: then it says only that
        nothing completed."""
        if complete == 0 and self.max_failure_rate >= 1.0:
            return (f"optuna_async: no trial completed: {failures} trials failed for good, and a sweep stops "
                    f"after floor(max_failure_rate * n_trials) + 1 = {allowed + 1} of them (their errors are "
                    f"logged above)")
        return (f"optuna_async: {failures} trial(s) failed for good, more than max_failure_rate="
                f"{self.max_failure_rate} allows ({allowed} of n_trials={n_trials}): stopping the sweep "
                f"({complete} trial(s) completed); the first: {self.first_failure}")
