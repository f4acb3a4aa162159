"""A container of the KFP stand-in as a process group: started with its log, signalled as a whole, reaped.

Why process groups: a container's processes (a shell, the Python it starts, socat's per-connection children)
must all die with it, as they do when Kubernetes stops a container.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from .kfp_images import Container

LOG_TAIL_BYTES = 2048  # Kubernetes keeps at most 2 KiB of a container's log as its termination message


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

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL of the whole group (its children too) after ``grace_s``; reaped."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL (D state)
            pass


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
