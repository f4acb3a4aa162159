"""Process-per-job scheduling behind the ``process_pool`` launcher.

Jobs are forked (no re-import, no pickling of the task function: a fork costs milliseconds), each with a
pipe for its JobReturn. A scheduler thread keeps at most ``n_jobs`` children alive, collects results as
they arrive, and turns a child that dies without answering (crash, ``os._exit``, signal, timeout) into a
FAILED JobReturn naming the exit code, so one broken job never breaks the pool.

Setting a job up (its config, job directory, ``.hydra/*.yaml``, logging) takes tens of milliseconds; a slot
that waits for it stays idle. So up to ``prepare_ahead`` jobs beyond the ``n_jobs`` running ones are forked
early and set up as far as the call of the task function, where they wait for a running job to end: the
freed slot goes to an already prepared job at once (a byte on its pipe), in the order jobs were submitted.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from ._job_runner import run_job_in_fork
from hydra_plugins.navitune_shared.sweep_config import SweepConfigFactory

log = logging.getLogger(__name__)
_FORK = mp.get_context("fork")


class JobProcessDied(RuntimeError):
    """The job's process ended without returning a result."""


@dataclass
class _Job:
    idx: int
    overrides: list[str]
    future: "Future[JobReturn]"
    process: mp.process.BaseProcess | None = None
    conn: Connection | None = None
    go: Connection | None = None  # a byte on it lets the prepared job call its task function
    released: bool = False
    started: float = 0.0  # when it was released (its time limit counts from there)
    result: JobReturn | None = field(default=None, repr=False)


def _wait_for_go(go: Connection, parent_pid: int) -> None:
    """Block a prepared job until the pool releases it; end the process quietly if the pool is gone or the
    sweep is interrupted (Ctrl-C reaches the whole process group; the sweeper fails and re-enqueues the trial)."""
    try:
        while not go.poll(1.0):
            if os.getppid() != parent_pid:  # the sweeper died: nobody will release this job
                os._exit(0)
        go.recv_bytes()
    except (EOFError, OSError, KeyboardInterrupt):
        os._exit(0)


def _child(conn: Connection, go: Connection, parent_pid: int, hydra_context: HydraContext,
           task_function: TaskFunction, configs: SweepConfigFactory, overrides: list[str], idx: int) -> None:
    """Body of a job process: compose the job's config (here, in parallel with the sweeper and the other
    jobs, not on the sweeper's thread), set the job up, wait to be released, run the task the way Hydra's
    launchers do, send the JobReturn back."""
    # Ctrl-C is the job's to take (KeyboardInterrupt), whatever handler the sweeper had at the fork (it
    # holds SIGINT back while it books trials, and the fork may come from the scheduler thread meanwhile)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        setup_globals()
        try:
            config = configs.load(overrides, private=True)
        except Exception as err:  # a bad override fails this job only, like a failing task
            ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
            ret.return_value = err
        else:
            with open_dict(config):
                config.hydra.job.id = str(idx)
                config.hydra.job.num = idx
            try:
                ret = run_job_in_fork(hydra_context, task_function, config,
                                      before_task=lambda: _wait_for_go(go, parent_pid))
            except OSError as err:  # the job could not be set up (e.g. a full disk under .hydra/): it fails alone,
                ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)  # in one line, no traceback
                ret.return_value = err
        try:
            payload = pickle.dumps(ret, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # an unpicklable return value fails this job only
            ret = JobReturn(overrides=ret.overrides, cfg=ret.cfg, hydra_cfg=ret.hydra_cfg,
                            working_dir=ret.working_dir, task_name=ret.task_name, status=JobStatus.FAILED)
            ret.return_value = RuntimeError(f"the job's result could not be sent back: {err}")
            payload = pickle.dumps(ret, protocol=pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(payload)
    except KeyboardInterrupt:  # Ctrl-C while the job was set up: the sweep is stopping, nothing to report
        pass
    except BaseException:  # a launcher bug, not a job failure: say what it was before the process ends
        import traceback

        traceback.print_exc()
    finally:
        conn.close()
        os._exit(0)  # skip atexit handlers inherited from the parent


class JobPool:
    """At most ``n_jobs`` job processes at a time; results as Futures of JobReturn."""

    def __init__(
        self,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        n_jobs: int,
        timeout_s: float | None = None,
        prepare_ahead: int = 0,
    ) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        self.n_jobs = n_jobs
        self.timeout_s = timeout_s
        self.prepare_ahead = prepare_ahead
        self._queue: deque[_Job] = deque()
        self._running: dict[int, _Job] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._configs = SweepConfigFactory(hydra_context.config_loader, config)
        # a byte on this pipe wakes the scheduler when a job is submitted while it waits on running jobs
        self._wake_recv, self._wake_send = _FORK.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._loop, name="navitune-job-pool", daemon=True)
        self._thread.start()
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

    # -------------------------------------------------------------------------------------------- API
    def submit(self, overrides: list[str], idx: int) -> "Future[JobReturn]":
        self._configs.prepare(overrides)  # once per sweep: the job processes inherit the composed base
        fut: Future[JobReturn] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the job pool is shut down")
            self._queue.append(_Job(idx, list(overrides), fut))
            self._lock.notify_all()
        self._wake()
        return fut

    def _wake(self) -> None:
        try:
            self._wake_send.send_bytes(b"w")
        except OSError:  # closed at shutdown
            pass

    @property
    def running(self) -> int:
        """Jobs whose task runs (or that were released to run it)."""
        with self._lock:
            return sum(job.released for job in self._running.values())

    @property
    def prepared(self) -> int:
        """Job processes set up (or being set up) that wait for a slot."""
        with self._lock:
            return sum(not job.released for job in self._running.values())

    def shutdown(self) -> None:
        """Stop accepting jobs, kill the running ones (their Futures fail), end the scheduler thread."""
        with self._lock:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._lock.notify_all()
        self._wake()
        for job in pending:
            job.future.cancel()
        self._thread.join(timeout=10)

    # ---------------------------------------------------------------------------------- scheduler
    def _start(self, job: _Job) -> bool:
        """Fork the job's process; False (the job failed, its Future resolved) when the fork itself fails
        (no memory, too many processes or files): the scheduler must survive that."""
        recv, send = _FORK.Pipe(duplex=False)
        go_recv, go_send = _FORK.Pipe(duplex=False)
        proc = _FORK.Process(
            target=_child,
            args=(send, go_recv, os.getpid(), self.hydra_context, self.task_function, self._configs,
                  job.overrides, job.idx),
            name=f"navitune-job-{job.idx}", daemon=False,
        )
        # The child shares the sweeper's memory copy-on-write; a garbage collection in it would walk (and so
        # copy) every object of the sweeper: frozen objects are left out of the child's collections.
        gc.freeze()
        try:
            proc.start()
        except Exception as err:
            for end in (recv, send, go_recv, go_send):
                end.close()
            log.error(f"job {job.idx} could not be started: {type(err).__name__}: {err}")
            ret = JobReturn(overrides=job.overrides, status=JobStatus.FAILED)
            ret.return_value = JobProcessDied(f"job {job.idx} could not be started: {type(err).__name__}: {err}")
            job.future.set_result(ret)
            return False
        finally:
            gc.unfreeze()
        send.close()
        go_recv.close()
        job.process, job.conn, job.go = proc, recv, go_send
        self._running[proc.sentinel] = job
        return True

    def _release(self, job: _Job) -> None:
        """Let a prepared job run its task (it reads the byte once it is set up, if it is not yet)."""
        job.released, job.started = True, time.monotonic()
        try:
            job.go.send_bytes(b"g")  # type: ignore[union-attr]
        except OSError:  # the process is gone: _reap reports how it ended
            pass

    def _fill(self) -> None:
        """Give free slots to prepared jobs (oldest first), then start processes for queued jobs."""
        released = sum(job.released for job in self._running.values())
        for job in sorted(self._running.values(), key=lambda j: j.idx):
            if released >= self.n_jobs:
                break
            if not job.released:
                self._release(job)
                released += 1
        while len(self._running) < self.n_jobs + self.prepare_ahead and self._queue:
            job = self._queue.popleft()
            if not job.future.set_running_or_notify_cancel() or not self._start(job):
                continue
            if released < self.n_jobs:
                self._release(job)
                released += 1

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._closed:
                    self._fill()
                if self._closed and not self._running:
                    self._wake_recv.close()
                    self._wake_send.close()
                    return
                if not self._running:
                    self._lock.wait(timeout=0.5)
                    continue
                watched = {}
                for job in self._running.values():
                    watched[job.conn] = job
                    watched[job.process.sentinel] = job
            ready = wait(list(watched) + [self._wake_recv], timeout=1.0 if self.timeout_s is None else 0.2)
            for obj in ready:
                if obj is self._wake_recv:
                    while self._wake_recv.poll():
                        self._wake_recv.recv_bytes()
                    continue
                job = watched[obj]
                if obj is job.conn and job.result is None:
                    try:
                        job.result = pickle.loads(job.conn.recv_bytes())  # nosec B301 (our own child)
                    except (EOFError, OSError):
                        pass
            self._reap(watched)

    def _reap(self, watched: dict) -> None:
        """Finish jobs whose process ended; kill jobs over their time limit or left after shutdown."""
        now = time.monotonic()
        for job in {id(j): j for j in watched.values()}.values():
            proc = job.process
            over_time = self.timeout_s is not None and job.released and now - job.started > self.timeout_s
            if proc.is_alive() and (over_time or self._closed):
                os.kill(proc.pid, signal.SIGKILL)
                proc.join()
                job.result = None
                reason = f"timed out after {self.timeout_s:g} s" if over_time else "killed at shutdown"
                self._finish(job, JobProcessDied(f"job {job.idx} {reason}"))
                continue
            if proc.is_alive():
                continue
            if job.result is None and job.conn.poll():
                try:
                    job.result = pickle.loads(job.conn.recv_bytes())  # nosec B301
                except (EOFError, OSError):
                    pass
            proc.join()
            if job.result is not None:
                self._finish(job, None)
            else:
                code = proc.exitcode
                how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
                self._finish(job, JobProcessDied(f"job {job.idx} ({' '.join(job.overrides)}) {how} without a result"))

    def _finish(self, job: _Job, died: Exception | None) -> None:
        with self._lock:
            self._running.pop(job.process.sentinel, None)
            if not self._closed:
                self._fill()  # a prepared job takes the slot before the sweeper even hears of this result
            self._lock.notify_all()
        job.conn.close()
        job.go.close()  # type: ignore[union-attr]
        if died is None:
            job.future.set_result(job.result)  # type: ignore[arg-type]
            return
        log.error(str(died))
        ret = JobReturn(overrides=job.overrides, status=JobStatus.FAILED)
        ret.return_value = died
        job.future.set_result(ret)


def launch_batch(pool: JobPool, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Hydra's batch contract: run every job (``n_jobs`` at a time) and return results in order."""
    setup_globals()
    configure_log(
        pool.config.hydra.hydra_logging, pool.config.hydra.verbose,
        execution_whitelist=pool.hydra_context.execution_whitelist,
    )
    log.info(f"Launching {len(job_overrides)} jobs, {pool.n_jobs} at a time, one process each")
    futures = []
    for i, overrides in enumerate(job_overrides):
        idx = initial_job_idx + i
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        futures.append(pool.submit(list(overrides), idx))
    return [f.result() for f in futures]
