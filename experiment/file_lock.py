"""One way to wait for an OS file lock: poll ``flock`` without blocking until it is held or a deadline passes.

Why polling: a holder that hangs must cost the waiter a bounded time and one clear error, never a process that
waits forever (``flock`` without ``LOCK_NB`` cannot time out). The lock dies with its holder, ``kill -9``
included. Used by the MLflow store's creation lock, the registry's write lock and the results file's turns.
"""

from __future__ import annotations

import fcntl
import time
from typing import Callable, Optional

from hydra_plugins.navitune_shared.retry import Backoff

POLL_BACKOFF = Backoff(first_s=0.0075, factor=2.0, max_s=0.25, jitter=0.33)  # 5 ms .. 250 ms between tries


def acquire(fd: int, exclusive: bool, timeout_s: float, busy: str,
            waiting: Optional[Callable[[float], None]] = None) -> None:
    """Hold ``flock(fd)`` (exclusive or shared) within ``timeout_s``, else ``TimeoutError(busy)``. The sleep
    between tries grows from 5 ms to 250 ms with jitter (two waiters do not retry in step); ``waiting(seconds)``
    is called after each failed try (e.g. to say once that it waits)."""
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    start, pauses = time.monotonic(), POLL_BACKOFF.pauses()
    while True:
        try:
            fcntl.flock(fd, mode)
            return
        except BlockingIOError:
            waited = time.monotonic() - start
            if waited > timeout_s:
                raise TimeoutError(busy) from None
            if waiting is not None:
                waiting(waited)
            time.sleep(next(pauses))
