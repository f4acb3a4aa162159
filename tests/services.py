"""Shared pieces of the fixtures that start real local services (MariaDB, bqemulator, mlflow server)."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path


def wait_http_ok(name: str, url: str, proc: subprocess.Popen, log: Path, timeout_s: float,
                 interval_s: float = 0.1, request_timeout_s: float = 1.0) -> None:
    """Poll ``url`` until it answers 200; fail with the service's log if it exits or misses the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=request_timeout_s) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not ready within {timeout_s:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(interval_s)


def stop(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if the service is still there after ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
