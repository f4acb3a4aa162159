"""The driver pipeline: one task that runs a whole sweep (its sweeper process) in the cluster.

Why a pipeline that launches pipelines: a sweep of 100 seven-day simulations lasts hours, and the sweeper that
asks trials and submits their runs must not live on a laptop. The driver's one task runs a command in the job
image (the sweep's own multirun command, with the launcher pointed at the in-cluster KFP API); the trials are
runs of the job pipeline (:mod:`.pipeline`), submitted by that sweeper exactly as from a laptop.

Why these choices:

* a **container component** with the command written out: the compiled YAML shows exactly what the pod runs,
  and nothing is pip-installed at start (the job image has everything);
* a **retry policy** on the task: a driver pod that dies (eviction, node preemption) is started again by KFP,
  and the new sweeper resumes the study (stale trials are retried as the same attempt, whose runs it re-attaches
  to by name);
* **no caching**: a re-run must run;
* the task goes through :mod:`.driver_task`, which starts the Cloud SQL proxy in mode ``process`` (the sweeper
  reaches the study from its first moment), waits for the native sidecar's port in mode ``native``, turns the
  run's scheduled time into a date for a scheduled cycle, and passes SIGTERM on to the sweeper;
* a scheduled cycle gets its time from KFP's placeholder ``{{$.pipeline_job_schedule_time_utc}}``
  (``dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER``), a constant input of the task that the backend resolves
  when the run starts, so every run of a recurring run knows its own scheduled time.

This module knows nothing of the app: the command is given to it.
"""

# no `from __future__ import annotations`: kfp reads the components' annotations as types

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .settings import LauncherSettings

TASK_MODULE = "hydra_plugins.navitune_kfp.driver_task"
DATE_TOKEN = "@SCHEDULE_DATE@"  # replaced in the command by the run's scheduled date (UTC, YYYY-MM-DD)


@dataclass(frozen=True)
class DriverOptions:
    """How the driver task runs: retries of its pod, their pauses, and an optional deadline."""

    retries: int = 3  # a dead driver pod is started again this many times
    backoff_s: int = 60  # first pause before a retry; doubles each time, at most backoff_max_s
    backoff_max_s: int = 3600
    timeout_s: Optional[int] = None  # the pod's activeDeadlineSeconds (null: none; a sweep takes hours)


def task_args(command: Sequence[str], proxy: Any = None, schedule_time: Any = None) -> list[str]:
    """The arguments of :mod:`.driver_task` around ``command``: the proxy settings (no secret: names only) and
    the schedule-time input (a placeholder at compile time)."""
    args: list[str] = []
    if proxy is not None:
        args += ["--proxy", json.dumps(_proxy_node(proxy), sort_keys=True)]
    if schedule_time is not None:
        args += ["--schedule-time", schedule_time]
    return [*args, "--", *command]


def _proxy_node(proxy: Any) -> dict[str, Any]:
    """The ``proxy`` config node that :func:`~hydra_plugins.navitune_shared.proxy_settings.proxy_settings` reads
    back in the pod."""
    node = dataclasses.asdict(proxy)
    return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v)
            for k, v in node.items() if v is not None}


def compile_driver(settings: LauncherSettings, name: str, description: str, command: Sequence[str], path: Path,
                   *, proxy: Any = None, scheduled: bool = False, options: DriverOptions = DriverOptions()) -> Path:
    """Compile the driver pipeline to ``path`` (YAML). ``command`` is what the task runs (in the job image, its
    working directory the project's); with ``scheduled`` every :data:`DATE_TOKEN` in it becomes the run's
    scheduled date. The pod gets the launcher's resources, placement, env and secrets (by name), and the Cloud SQL
    proxy (``proxy``: a ``ProxySettings``) like the jobs: a native sidecar, or a process the task starts."""
    from kfp import dsl

    from .pipeline import _configure, compile_with_proxy

    image, fixed = settings.image, list(command)

    if scheduled:
        @dsl.container_component
        def navitune_driver(schedule_time: str):  # type: ignore[no-untyped-def]
            return dsl.ContainerSpec(image=image, command=["python", "-m", TASK_MODULE],
                                     args=task_args(fixed, proxy, schedule_time))
    else:
        @dsl.container_component
        def navitune_driver():  # type: ignore[no-untyped-def]
            return dsl.ContainerSpec(image=image, command=["python", "-m", TASK_MODULE], args=task_args(fixed, proxy))

    @dsl.pipeline(name=name, description=description)
    def driver_pipeline():  # type: ignore[no-untyped-def]
        if scheduled:
            task = navitune_driver(schedule_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
        else:
            task = navitune_driver()
        _configure(task, dataclasses.replace(settings, timeout_s=None))  # the jobs' deadline is not the sweep's
        if options.timeout_s is not None:
            from kfp import kubernetes as k8s

            k8s.set_timeout(task, int(math.ceil(options.timeout_s)))
        if options.retries:
            task.set_retry(num_retries=options.retries, backoff_duration=f"{options.backoff_s}s", backoff_factor=2.0,
                           backoff_max_duration=f"{options.backoff_max_s}s")

    return compile_with_proxy(driver_pipeline, path, proxy)
