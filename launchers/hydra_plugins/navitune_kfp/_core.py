"""The kfp launcher's work: checks, one compile per sweep, and ``n_jobs`` job threads feeding a backend.

Order of ``setup`` (Hydra calls it before the sweeper touches a study): every check that can fail (settings,
task reference, proxy, study storage, API reachability) runs before the first byte is written; then the
pipeline is compiled into ``<sweep dir>/pipeline.yaml``. Each ``submit`` composes the job's config on the
caller's thread (Hydra's config loader is not thread-safe) and hands the job to a pool of ``n_jobs`` threads,
each of which runs one job at a time on the backend and always resolves its Future to a JobReturn. Up to
``prepare_ahead`` jobs beyond ``n_jobs`` wait composed in the pool's queue (``prepared``), so a thread whose
run ended starts the next run at once, while the sweeper is still recording the result.

For whatever else runs in the sweeper's process (e.g. a callback that posts a link when the sweep ends), setup
leaves the sweep's KFP experiment page in the environment variable ``NAVITUNE_KFP_EXPERIMENT_URL``
(``<ui_host or host>/#/experiments/details/<id>``, no credentials; ``backend=remote`` only, removed by a
setup without one). Hydra sets the launcher up after every ``on_multirun_start`` callback, so read it later.
Each job's own run id and page reach the job as ``NAVITUNE_KFP_RUN_ID`` / ``NAVITUNE_KFP_RUN_URL`` (``job``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict
from hydra_plugins.navitune_shared.protocol import ENV_KFP_EXPERIMENT_URL

from . import jobspec, results
from .checks import check_sweep
from .errors import LauncherShutdown
from .job import UI_OPTION
from .settings import LauncherSettings, ui_base

log = logging.getLogger(__name__)


class KFPLauncherCore:
    def __init__(self, settings: LauncherSettings, hydra_context: HydraContext, task_function: TaskFunction,
                 config: DictConfig) -> None:
        self.settings = settings
        self.hydra_context = hydra_context
        self.config = config
        self.remote = settings.backend == "remote"
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.experiment = jobspec.experiment_name(settings.experiment, config)
        self.pipeline_name = jobspec.pipeline_name(settings.pipeline_name, self.experiment)
        self.pipeline_path = self.sweep_dir / "pipeline.yaml"
        self._closing = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._backend: Any = None
        self._configs: Any = None  # SweepConfigFactory, created on first use (False: not available)
        self._waiting = 0  # jobs submitted that wait for a free thread (prepare_ahead)
        self._waiting_lock = threading.Lock()

        # ---- checks: nothing is written or submitted before all of them pass
        ref = jobspec.task_reference(task_function)
        runs_remotely = self.remote and not settings.compile_only
        self.task_ref = jobspec.remote_reference(ref, task_function) if runs_remotely else ref
        proxy = check_sweep(settings, config)
        os.environ.pop(ENV_KFP_EXPERIMENT_URL, None)  # a page of an earlier sweep of this process is not this one's
        if runs_remotely:
            from .remote_backend import RemoteBackend

            self._backend = RemoteBackend(settings, self.experiment, f"navitune sweep {self.sweep_dir}")
            os.environ[ENV_KFP_EXPERIMENT_URL] = self._backend.link("experiments", self._backend.experiment_id)
        # ---- compile once per sweep
        self._compile(proxy)
        if settings.compile_only:
            log.info("kfp: compile_only=true: the pipeline is %s (job pipeline %r, image %s); nothing is "
                         "submitted", self.pipeline_path.resolve(), self.pipeline_name, settings.image)
            return
        if self.remote:
            from .pipeline import pipeline_spec_for_api

            self._backend.pipeline_spec = pipeline_spec_for_api(self.pipeline_path)
            self._backend.closing = self._closing
        else:
            from .local_backend import LocalBackend

            if self.task_ref is None:
                self.task_ref = self._pickle_task(task_function)
            self._backend = LocalBackend(settings, self.sweep_dir, self.pipeline_path)
        self._pool = ThreadPoolExecutor(max_workers=settings.n_jobs, thread_name_prefix="navitune-kfp")

    # ----------------------------------------------------------------------------------- compile
    def _compile(self, proxy: Any) -> None:
        """Compile the job pipeline once per sweep (the sweeper sets its launcher up once)."""
        from .pipeline import compile_pipeline

        study = jobspec.study_of_sweep(self.config)
        what = f"study {study}" if study else f"the sweep in {self.sweep_dir}"
        compile_pipeline(self.settings, self.pipeline_name, f"navitune jobs of {what} (KFP experiment "
                         f"{self.experiment})", self.pipeline_path, proxy=proxy)
        if not self.settings.compile_only:  # compile_only says it in its own line
            log.info("kfp: compiled the job pipeline %r (image %s) into %s", self.pipeline_name,
                     self.settings.image, self.pipeline_path)

    def _pickle_task(self, task_function: TaskFunction) -> str:
        """``backend=local`` only: a task function that cannot be imported by name travels as a cloudpickle,
        with the OmegaConf resolvers registered here (a custom resolver its config may use)."""
        import cloudpickle
        from omegaconf.basecontainer import BaseContainer

        resolvers = {}
        for name, fn in BaseContainer._resolvers.items():
            try:
                cloudpickle.dumps(fn)
                resolvers[name] = fn
            except Exception:  # noqa: BLE001 - a resolver that does not pickle stays behind
                continue
        path = self.sweep_dir / ".kfp_local" / "task.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            _filename_pickler()(fh, protocol=pickle.HIGHEST_PROTOCOL).dump({"task": task_function, "resolvers": resolvers})
        return f"pickle:{path.resolve()}"

    # --------------------------------------------------------------------------------------- jobs
    def _job(self, overrides: list[str], idx: int) -> jobspec.JobSpec:
        config = self._load_config(list(overrides))
        with open_dict(config):
            config.hydra.job.id = str(idx)
            config.hydra.job.num = idx
        return jobspec.JobSpec(idx=idx, overrides=list(overrides), config=config,
                               run_name=jobspec.run_name(config, idx), config_yaml=jobspec.config_yaml(config))

    def _load_config(self, overrides: list[str]) -> DictConfig:
        """The job's composed config. Value-only overrides (what a sweeper writes) are applied to one base
        composition (process_pool's SweepConfigFactory, tested equal to Hydra's): a full Hydra composition per
        job costs 100-200 ms of the sweeper's thread."""
        if self._configs is None:
            try:
                from hydra_plugins.navitune_shared.sweep_config import SweepConfigFactory
            except ImportError:
                self._configs = False
            else:
                self._configs = SweepConfigFactory(self.hydra_context.config_loader, self.config)
        if self._configs is False:
            return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        return self._configs.load(overrides)

    def _params(self, job: jobspec.JobSpec) -> dict[str, str]:
        options = {"execution_whitelist": self.hydra_context.execution_whitelist,
                   "publish": self.remote and results.channel(job.config) is not None}
        ui = ui_base(self.settings)
        if ui:  # the job forms its run's link from it (NAVITUNE_KFP_RUN_URL)
            options[UI_OPTION] = ui
        return {"config_yaml": job.config_yaml, "task_function": str(self.task_ref), "run_name": job.run_name,
                "options_json": json.dumps(options)}

    def submit(self, overrides: list[str], idx: int) -> "Future[JobReturn]":
        job = self._job(overrides, idx)
        if self.settings.compile_only:  # nothing runs: the job "completes" with no value, and says why
            log.warning("kfp: compile_only=true: job %d (%s) not submitted; the pipeline is %s", idx, job.run_name,
                        self.pipeline_path.resolve())
            done: Future[JobReturn] = Future()
            done.set_result(results.completed(job.overrides, job.config, None))
            return done
        if self._pool is None or self._closing.is_set():
            raise RuntimeError("the kfp launcher is shut down")
        with self._waiting_lock:
            self._waiting += 1
        return self._pool.submit(self._run, job)

    @property
    def prepared(self) -> int:
        """Jobs submitted beyond the n_jobs threads, composed and waiting for one of them."""
        with self._waiting_lock:
            return self._waiting

    def _run(self, job: jobspec.JobSpec) -> JobReturn:
        """One job on the backend, in a pool thread; every outcome is a JobReturn (never an exception)."""
        with self._waiting_lock:
            self._waiting -= 1
        if self._closing.is_set():
            return results.failed(job.overrides, job.config, LauncherShutdown(f"job {job.idx} was not started"))
        try:
            return self._backend.run(job, self._params(job), self._closing)
        except Exception as err:  # noqa: BLE001 - the job fails, the sweep goes on
            log.error("job %d (%s) failed in the launcher: %s: %s", job.idx, job.run_name, type(err).__name__, err)
            return results.failed(job.overrides, job.config, err)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """Hydra's batch contract: run every job (``n_jobs`` at a time) and return the results in order."""
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose,
                      execution_whitelist=self.hydra_context.execution_whitelist)
        if self.settings.compile_only:
            log.info(f"compile_only=true: not launching {len(job_overrides)} jobs")
        else:
            where = "this machine (kfp.local)" if not self.remote else f"{self.settings.host}"
            log.info(f"Launching {len(job_overrides)} jobs as KFP runs on {where}, {self.settings.n_jobs} at a time")
        futures = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            futures.append(self.submit(list(overrides), idx))
        return [f.result() for f in futures]

    def shutdown(self) -> None:
        """Stop: queued jobs are dropped, local job processes are stopped, remote runs are left running
        (re-attachable) unless ``cancel_on_shutdown``."""
        self._closing.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _filename_pickler() -> type:
    """A cloudpickle Pickler that keeps code objects' file names (cloudpickle writes ``<dynamic-code>``), so a
    failing task's traceback still points at its source file."""
    import types

    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, types.CodeType):
                ctor, args = self.dispatch_table[types.CodeType](obj)
                return ctor, tuple(obj.co_filename if a == "<dynamic-code>" else a for a in args)
            return super().reducer_override(obj)

    return Pickler

