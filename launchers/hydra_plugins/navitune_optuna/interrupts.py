"""Ctrl-C held back while the sweeper books trials."""

from __future__ import annotations

from typing import Any


class HeldInterrupt:
    """Holds Ctrl-C (SIGINT) back for the duration of a ``with`` block and delivers it at the block's end.

    The sweeper's bookkeeping (ask, owner write, submit, tell) must not be cut in half: a trial asked but not
    yet recorded in flight would stay RUNNING after the sweep stopped. The sweeper spends nearly all its time
    waiting for jobs, outside these blocks, where an interrupt arrives at once; a second Ctrl-C inside a block
    (a storage call that hangs) goes through at once. Only the main thread can install signal handlers, and a
    handler installed outside Python cannot be restored: then this does nothing.
    """

    def __init__(self) -> None:
        self._previous: Any = None
        self._received: tuple[int, Any] | None = None
        self._active = False

    def __enter__(self) -> "HeldInterrupt":
        import signal
        import threading

        self._received = None
        self._active = (threading.current_thread() is threading.main_thread()
                        and signal.getsignal(signal.SIGINT) is not None)
        if self._active:
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        if self._received is not None:  # pressed again: the user means it
            raise KeyboardInterrupt
        self._received = (signum, frame)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import signal

        if not self._active:
            return
        signal.signal(signal.SIGINT, self._previous)
        received, self._received = self._received, None
        if received is None or exc_type is KeyboardInterrupt:
            return
        if exc_type is not None:  # the block failed after Ctrl-C: still an interrupt (its trials run again)
            raise KeyboardInterrupt from exc
        if callable(self._previous):
            self._previous(*received)  # Python's default handler raises KeyboardInterrupt here
        elif self._previous != signal.SIG_IGN:
            raise KeyboardInterrupt
