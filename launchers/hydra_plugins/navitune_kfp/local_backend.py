"""``backend=local``: each job runs the compiled pipeline with ``kfp.local`` in a process of its own.

See ``local_run`` for why a process per job. Files of a job go to ``<sweep dir>/.kfp_local/<idx>-<run name>/``:
its parameters, kfp.local's log (the job's own output included), the pipeline outputs and the JobReturn the
job pickles for this launcher (which keeps the remote traceback and the real exception type).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra_plugins.navitune_shared.protocol import ENV_KFP_RESULT_FILE

from . import results
from .errors import LauncherShutdown, LocalJobDied
from .jobspec import JobSpec
from .settings import LauncherSettings

log = logging.getLogger(__name__)
STOP_GRACE_S = 5.0


class LocalBackend:
    """Runs one job at a time per calling thread (the launcher keeps ``n_jobs`` threads)."""

    def __init__(self, settings: LauncherSettings, sweep_dir: Path, pipeline_path: Path) -> None:
        self.settings = settings
        self.root = sweep_dir / ".kfp_local"
        self.pipeline_path = pipeline_path

    def run(self, job: JobSpec, params: dict[str, str], closing: threading.Event) -> JobReturn:
        work = self.root / f"{job.idx}-{job.run_name}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "params.json").write_text(json.dumps(params))
        result_file = work / "result.pkl"
        result_file.unlink(missing_ok=True)
        log_path = work / "kfp.log"
        env = dict(os.environ)
        env[ENV_KFP_RESULT_FILE] = str(result_file)
        env.update(self.settings.env)  # what the cluster would set on the pod (secrets come from this env)
        # the job imports the task function by name from the same places as this process (the image would have
        # the same installed packages)
        env["PYTHONPATH"] = os.pathsep.join([p for p in (env.get("PYTHONPATH"), *sys.path) if p and os.path.isdir(p)])
        cmd = [sys.executable, "-m", "hydra_plugins.navitune_kfp.local_run", "--pipeline", str(self.pipeline_path),
               "--params", str(work / "params.json"), "--root", str(work)]
        with log_path.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.info("job %d: local KFP run %s (log: %s)", job.idx, job.run_name, log_path)
        started = time.monotonic()
        why: BaseException | None = None
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if closing.is_set():
                why = LauncherShutdown(f"job {job.idx} ({job.run_name}) was stopped: the launcher shut down")
            elif self.settings.timeout_s is not None and time.monotonic() - started > self.settings.timeout_s:
                why = _timed_out(job, self.settings.timeout_s)
            if why is not None:
                _stop(proc)
                break
        if why is not None:
            log.error(str(why))
            return results.failed(job.overrides, job.config, why)
        if result_file.exists():
            ret = results.loads_result_file(str(result_file))
            if isinstance(ret, JobReturn):
                return ret
        output = _pipeline_output(work)
        if output is not None:
            return results.decode(json.loads(output), job.overrides, job.config)
        died = LocalJobDied(f"job {job.idx} ({job.run_name}): the local KFP run ended (exit code {proc.returncode}) "
                            f"without a result; last lines of {log_path}: {_tail(log_path)}")
        log.error(str(died))
        return results.failed(job.overrides, job.config, died)


def _timed_out(job: JobSpec, timeout_s: float) -> BaseException:
    from .errors import RunTimedOut

    return RunTimedOut(f"job {job.idx} ({job.run_name}) timed out after {timeout_s:g} s "
                       "(hydra.launcher.timeout_s) and was killed")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the job's process group (local_run and the component under it), SIGKILL after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait_s)
            if sig == signal.SIGTERM:
                os.killpg(proc.pid, signal.SIGKILL)  # children that ignored SIGTERM
            return
        except subprocess.TimeoutExpired:
            continue
        except (ProcessLookupError, PermissionError):
            return


def _pipeline_output(work: Path) -> Any:
    path = work / "output.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("output")
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"

