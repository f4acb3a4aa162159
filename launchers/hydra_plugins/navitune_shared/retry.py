"""One retry policy for every remote call navitune makes: the Optuna storage, the BigQuery sink, the KFP API.

Why one: each caller used to carry its own loop and its own back-off formula, so a fix (jitter, a cap, a
deadline) reached one of them. A caller says *what* is worth retrying (a predicate on the error, never on
its text alone where a code exists) and *how long* to wait (a :class:`Backoff`); the loop is here. The last
error is re-raised as it was, so each caller keeps its own one-line message.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential pauses: ``first_s``, then ``factor`` times the previous, never above ``max_s``; each drawn
    uniformly within ``± jitter`` of its nominal value (so waiters that failed together do not retry in step)."""

    first_s: float
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (self.first_s >= 0 and self.factor >= 1 and self.max_s > 0 and 0 <= self.jitter < 1):
            raise ValueError(f"invalid back-off {self}: need first_s >= 0, factor >= 1, max_s > 0, 0 <= jitter < 1")

    def pauses(self, rng: Optional[random.Random] = None) -> Iterator[float]:
        """The pauses between tries, without end."""
        uniform = (rng or random).uniform
        nominal = min(self.first_s, self.max_s)
        while True:
            yield nominal * uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else nominal
            nominal = min(nominal * self.factor, self.max_s)


def call_with_retries(fn: Callable[[], T], *, attempts: int, retry_on: Callable[[BaseException], bool],
                      backoff: Backoff, sleep: Callable[[float], None] = time.sleep,
                      on_retry: Optional[Callable[[BaseException, int, float], None]] = None,
                      rng: Optional[random.Random] = None) -> T:
    """``fn()``; an error for which ``retry_on(err)`` holds is tried again, at most ``attempts`` tries in all.

    Any other error, and the error of the last try, propagates unchanged. ``on_retry(err, retry_number,
    pause_s)`` is called before each pause (e.g. to log one line); ``sleep(pause_s)`` waits, and may raise to
    end the retries early (a launcher shutting down)."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    pauses = backoff.pauses(rng)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - judged by the caller's predicate
            if attempt == attempts or not retry_on(err):
                raise
            pause = next(pauses)
            if on_retry is not None:
                on_retry(err, attempt, pause)
            sleep(pause)
    raise AssertionError("unreachable")
