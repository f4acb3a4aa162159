"""What a job's return value or error means for its trial: values the study can take, the error's one line and
signature (the same error twice ends the retries), and a full disk."""

from __future__ import annotations

from enum import Enum

import hashlib
import logging
import math
from typing import Any


def objective_values(value: Any, n: int) -> list[float]:
    """The objective values of a job's return value; ValueError says what it returned and what the study
    takes (one number per objective, not NaN: Optuna would fail such a trial itself)."""
    expected = "one number" if n == 1 else f"{n} numbers (one per objective)"
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if n == 1 and isinstance(value, (list, tuple)):
        raise ValueError(f"returned {len(value)} values ({shown}); the study takes {expected}")
    try:
        if n > 1 and isinstance(value, (str, bytes)):
            raise TypeError("a text is not a sequence of values")
        values = [float(value)] if n == 1 else [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"returned {shown}; the study takes {expected}") from None
    if len(values) != n:
        raise ValueError(f"returned {len(values)} values ({shown}); the study takes {expected}")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"returned {shown}; the study takes {expected}, not NaN")
    return values


def signature(error: BaseException | None) -> str:
    """What two attempts failing "the same way" share: the error's type and message, digits aside (a
    message may name a job's directory or process id)."""
    import re

    text = re.sub(r"\d+", "#", f"{type(error).__name__}: {error}")
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def disk_full(error: BaseException | None) -> bool:
    """Did the job run out of disk space (ENOSPC, or EDQUOT: a quota) anywhere in its error's chain?"""
    import errno

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error) or "Disk quota exceeded" in str(error):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def quiet_full_disk_logging() -> None:
    """A log file on a full disk makes Python's logging print a traceback for every record, in the sweeper
    and (inherited at the fork) in each job: such errors are dropped, the sweep says "disk full" once.
    Other logging errors are reported as before."""
    original = logging.Handler.handleError
    if getattr(original, "_navitune", False):
        return

    def handle_error(self: logging.Handler, record: logging.LogRecord) -> None:
        import sys

        if not disk_full(sys.exc_info()[1]):
            original(self, record)

    handle_error._navitune = True  # type: ignore[attr-defined]
    logging.Handler.handleError = handle_error  # type: ignore[method-assign]


class Outcome(Enum):
    """What recording a job's result did to its trial."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    RETRIED = "retried"  # failed, and the same parameters are queued again
    FAILED = "failed"  # failed for good: counts against max_failure_rate
    LOST = "lost"  # another sweeper had already failed the trial as stale and runs it again
