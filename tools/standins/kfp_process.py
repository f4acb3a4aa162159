"""A container of the KFP stand-in as a process group: started with its log, signalled as a whole, reaped.

Why process groups: a container's processes (a shell, the Python it starts, socat's per-connection children)
must all die with it, as they do when Kubernetes stops a container.

Why a reaper: with 100 pods in flight, a wait per container that wakes up every few milliseconds to ask
(``Popen.wait(timeout)`` polls with growing sleeps) costs thousands of wake-ups a second on a 2-core machine. One
thread (:class:`_Reaper`) sleeps in ``epoll`` on every container's pidfd and, when a process exits, reaps it and
sets its :attr:`Proc.exited` flag; waiters sleep on flags (:func:`wait_any`) and wake only when something happens
or their deadline comes. Where pidfds are not available, each process gets a thread blocked in ``waitpid``.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
from pathlib import Path
from typing import Callable

from .kfp_images import Container

LOG_TAIL_BYTES = 2048  # Kubernetes keeps at most 2 KiB of a container's log as its termination message
WAIT_SLICE_S = 60.0  # a wait without a deadline still wakes this often (a lost wake-up cannot hang it)


class Flag(threading.Event):
    """An event that also calls listeners when set: what lets one wait sleep on several events at once."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[Callable[[], None]] = []
        self._listen_lock = threading.Lock()

    def set(self) -> None:
        with self._listen_lock:
            super().set()
            listeners = list(self._listeners)
        for fn in listeners:
            fn()

    def listen(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the flag is set (at once if it is already)."""
        with self._listen_lock:
            self._listeners.append(fn)
            now = self.is_set()
        if now:
            fn()

    def unlisten(self, fn: Callable[[], None]) -> None:
        with self._listen_lock:
            if fn in self._listeners:
                self._listeners.remove(fn)


def wait_any(flags: list[Flag], timeout_s: float | None) -> bool:
    """Sleep until one of ``flags`` is set (True) or ``timeout_s`` passes (False), without polling."""
    wake = threading.Event()
    for f in flags:
        f.listen(wake.set)
    try:
        return wake.wait(timeout_s)
    finally:
        for f in flags:
            f.unlisten(wake.set)


class _Reaper:
    """One thread that reaps every container's process as it exits (``epoll`` on pidfds)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._procs: dict[int, "Proc"] = {}  # pidfd -> its process
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, proc: "Proc") -> None:
        try:
            pidfd = os.pidfd_open(proc.popen.pid)
        except (AttributeError, OSError):  # no pidfds here: a thread blocked in waitpid for this process
            threading.Thread(target=self._wait_one, args=(proc,), name=f"reap-{proc.popen.pid}", daemon=True).start()
            return
        with self._lock:
            self._procs[pidfd] = proc
            self._epoll.register(pidfd, select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kfp-standin-reaper", daemon=True)
                self._thread.start()

    @staticmethod
    def _wait_one(proc: "Proc") -> None:
        proc.popen.wait()
        proc.exited.set()

    def _run(self) -> None:
        while True:  # the process's life: a daemon thread that sleeps until a process exits
            for fd, _ in self._epoll.poll():
                with self._lock:
                    proc = self._procs.pop(fd, None)
                    if proc is not None:
                        self._epoll.unregister(fd)
                if proc is None:
                    continue
                os.close(fd)
                try:
                    proc.popen.wait()  # it has exited: returns at once (reaped here, or by whoever holds its lock)
                finally:
                    proc.exited.set()


_REAPER = _Reaper()


class PodFailed(Exception):
    """The pod ended badly: ``reason`` as Kubernetes names it, ``message`` what the run's error shows."""

    def __init__(self, reason: str, message: str, retryable: bool = True) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.retryable = reason, message, retryable


class Proc:
    """A started container: its process (own process group) and its log."""

    def __init__(self, c: Container, log: Path) -> None:
        self.container = c
        self.log = log
        try:
            with log.open("ab") as out:
                self.popen = subprocess.Popen(c.argv, cwd=c.cwd, env=c.env, stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as err:  # what the kubelet reports for a command that cannot be executed
            raise PodFailed("StartError", f"container {c.name}: cannot run {c.argv[:1]}: {err.strerror or err}",
                            retryable=False) from None
        self.exited = Flag()  # set once the process has exited and been reaped (``popen.returncode`` is known)
        _REAPER.watch(self)

    def alive(self) -> bool:
        return not self.exited.is_set()

    def wait(self, timeout_s: float | None) -> int | None:
        """The exit code once the process has exited; None if it still runs after ``timeout_s``."""
        if not self.exited.wait(timeout_s):
            return None
        return self.popen.returncode

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL of the whole group (its children too) after ``grace_s``; reaped."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            self.exited.wait(grace_s)
        self.signal_group(signal.SIGKILL)
        self.exited.wait(10)  # False only for a process that survives SIGKILL (D state)


def last_line(log: Path) -> str:
    """The last non-empty line of a container's log (of at most its last 2 KiB), as the pod's message."""
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return lines[-1][:1000] if lines else ""
