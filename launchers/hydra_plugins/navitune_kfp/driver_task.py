"""What the driver pipeline's task runs in its pod:
``python -m hydra_plugins.navitune_kfp.driver_task [--proxy JSON] [--schedule-time TIME] -- COMMAND...``.

It turns the run's scheduled time into a date in ``COMMAND`` (every ``@SCHEDULE_DATE@``), makes the study
database reachable (mode ``process``: starts the Cloud SQL proxy and keeps it up for the whole sweep; mode
``native``: waits for the sidecar's port), runs ``COMMAND`` as a child process, passes SIGTERM / SIGINT on to it
as SIGINT (an evicted pod's sweeper stops as on Ctrl-C: its trials in flight are failed as stopped and enqueued
again for the next attempt), and exits with its exit code, so KFP's retry policy sees a failed sweep as a failed
task.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
from typing import Any, Sequence

from .driver import DATE_TOKEN

log = logging.getLogger("navitune.driver")
UNRESOLVED = "{{$.pipeline_job_schedule_time_utc}}"


class DriverTaskError(ValueError):
    """Bad arguments of the driver task (one line)."""


def schedule_date(text: str | None, now: dt.datetime | None = None) -> str:
    """The UTC date (YYYY-MM-DD) of a run's scheduled time as KFP gives it (RFC 3339, e.g.
    ``2026-12-07T03:00:00Z``). A run that no schedule started (its time empty, or the placeholder left as it is)
    takes today's UTC date, with one log line."""
    if not text or text == UNRESOLVED:
        today = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).date().isoformat()
        log.warning("navitune driver: this run has no scheduled time (started by hand?): as_of = today, %s (UTC)",
                    today)
        return today
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise DriverTaskError(f"navitune driver: invalid --schedule-time {text!r}; allowed: an RFC 3339 time such "
                              "as 2026-12-07T03:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).date().isoformat()


def resolve_command(command: Sequence[str], schedule_time: str | None, now: dt.datetime | None = None) -> list[str]:
    """``command`` with every :data:`DATE_TOKEN` replaced by the scheduled date (when the command has one)."""
    if not command:
        raise DriverTaskError("navitune driver: missing COMMAND after '--'")
    if not any(DATE_TOKEN in a for a in command):
        return list(command)
    date = schedule_date(schedule_time, now)
    return [a.replace(DATE_TOKEN, date) for a in command]


def _proxy(text: str | None) -> Any:
    if not text:
        return None
    from hydra_plugins.navitune_shared.proxy_settings import proxy_settings

    try:
        return proxy_settings({"proxy": json.loads(text)})
    except (ValueError, TypeError) as err:
        raise DriverTaskError(f"navitune driver: invalid --proxy: {err}") from None


def run(command: Sequence[str]) -> int:
    """Run ``command`` as a child; SIGTERM and SIGINT are passed on to it as SIGINT (a pod's stop is the
    sweeper's Ctrl-C: it fails its trials in flight as stopped instead of dying with them RUNNING); its exit
    code is returned (a signal that killed it: 128 + the signal's number, as a shell reports it)."""
    child = subprocess.Popen(list(command))
    previous = {}

    def forward(_signum: int, _frame: Any) -> None:
        if child.poll() is None:  # as SIGINT: the sweeper stops cleanly on Ctrl-C only (it records its trials)
            child.send_signal(signal.SIGINT)

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, forward)
    try:
        code = child.wait()
    except BaseException:  # the proxy died (ProxyDied), or an error here: the sweeper must not outlive us
        stop(child)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def stop(child: "subprocess.Popen[Any]", grace_s: float = 30.0) -> None:
    """SIGINT, then SIGKILL after ``grace_s`` (the sweeper records its interrupted trials in between)."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("navitune driver: missing '--' before COMMAND", file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="navitune driver")
    parser.add_argument("--proxy", default=None, help="the proxy config node as JSON (names only, no secret)")
    parser.add_argument("--schedule-time", default=None, help="the run's scheduled time (RFC 3339)")
    args = parser.parse_args(argv[:cut])
    try:
        command = resolve_command(argv[cut + 1:], args.schedule_time)
        proxy = _proxy(args.proxy)
    except DriverTaskError as err:
        print(str(err), file=sys.stderr)
        return 2
    from .proxy import ProxyError, proxy_for_job

    log.info("navitune driver: %s", " ".join(command[:4]) + (" ..." if len(command) > 4 else ""))
    try:
        with proxy_for_job(proxy):
            return run(command)
    except ProxyError as err:  # the proxy would not start, or died mid-sweep: the task fails, KFP retries it
        print(f"navitune driver: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
