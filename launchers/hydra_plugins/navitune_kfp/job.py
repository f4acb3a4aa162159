"""The job inside a KFP run: run one Hydra job exactly as Hydra's launchers do, and report its result.

Given the job's composed config (YAML, interpolations unresolved) and the task function's reference, this sets
up Hydra's globals and HydraConfig, starts the Cloud SQL proxy when ``proxy.mode=process`` asks for it, and
calls ``hydra.core.utils.run_job`` (job directory, ``hydra.job.env_set``, logging, callbacks). Its result goes
back three ways: the component's output (JSON), a study user attribute for the launcher of a remote run (see
``results``), and, for ``backend=local``, a pickled JobReturn at ``$NAVITUNE_KFP_RESULT_FILE``. A failed job
raises :class:`JobFailed`, so the KFP run is FAILED, and writes ``<Type>: <message>`` to the Kubernetes
termination log, which the run's error shows.

Before the Hydra job starts, the job learns which KFP run it is, so the task can point back to it (e.g. tag its
tracking run with it). Two environment variables, generic (nothing here knows what the task does with them):

* ``NAVITUNE_KFP_RUN_ID``: the id of the KFP run executing this job (KFP resolves it from the placeholder the
  pipeline passes; with ``backend=local`` it is kfp.local's id of the local run). Unset when unknown.
* ``NAVITUNE_KFP_RUN_URL``: the run's page in the KFP UI, ``<ui>/#/runs/details/<run id>``, where ``<ui>`` is
  the launcher's ``ui_host`` or ``host`` (``backend=remote`` only; a local run has no page). The launcher sends
  ``<ui>`` in the run's ``options_json`` as ``kfp_ui``, without credentials.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.navitune_shared.protocol import ENV_KFP_RESULT_FILE, ENV_KFP_RUN_ID, ENV_KFP_RUN_URL

log = logging.getLogger(__name__)

UI_OPTION = "kfp_ui"  # options_json key: the KFP UI's base URL (remote runs)
TERMINATION_LOG = "/dev/termination-log"


class JobFailed(RuntimeError):
    """The Hydra job failed; raising it from the component makes the KFP run FAILED."""


def load_task(ref: str) -> Any:
    """The task function: ``module:qualname``, ``file:<path>:qualname``, or (``backend=local`` only) a pickle
    written by the launcher (a closure or callable object, with the custom resolvers it may need)."""
    if ref.startswith("pickle:"):
        with open(ref[len("pickle:"):], "rb") as fh:
            payload = pickle.load(fh)  # nosec B301 - written by the launcher that started this local job
        from omegaconf.basecontainer import BaseContainer

        for name, resolver in payload.get("resolvers", {}).items():
            BaseContainer._resolvers.setdefault(name, resolver)
        return payload["task"]
    from .jobspec import import_task

    return import_task(ref)


def load_config(config_yaml: str) -> Any:
    """The job's config from YAML, its ``hydra`` node typed as Hydra's ``HydraConf`` again (HydraConfig
    insists), struct mode on as after composition."""
    from hydra.conf import HydraConf
    from omegaconf import OmegaConf, open_dict

    config = OmegaConf.create(config_yaml)
    if "hydra" in config:
        schema = OmegaConf.structured(HydraConf)
        OmegaConf.set_struct(schema, False)  # composition adds keys of its own (e.g. the empty hydra.env)
        hydra_node = OmegaConf.merge(schema, config.hydra)
        with open_dict(config):
            config.hydra = hydra_node
    OmegaConf.set_struct(config, True)
    return config


def _failed(error: BaseException) -> JobReturn:
    from hydra.core.utils import _serialize_exception_chain, _serialize_traceback

    ret = JobReturn(status=JobStatus.FAILED)
    ret.return_value = error
    ret._remote_traceback = _serialize_traceback(error.__traceback__)
    ret._remote_exception_chain = _serialize_exception_chain(error)
    return ret


def run_hydra_job(config: Any, task_function: Any, execution_whitelist: Any,
                  finish: Callable[[JobReturn], None] | None = None) -> JobReturn:
    """``run_job`` as Hydra's launchers call it, wrapped in the Cloud SQL proxy the config asks for;
    ``finish(ret)`` runs before the proxy stops, so a result written to the study storage goes through it."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.execution_policy import execution_whitelist as whitelist_scope
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobRuntime, run_job, setup_globals
    from hydra.types import HydraContext

    from .proxy import ProxyError, proxy_for_job, proxy_settings

    setup_globals()
    JobRuntime.instance().set("name", str(config.hydra.job.name))
    with whitelist_scope(execution_whitelist, reset=True):
        callbacks = Callbacks(config)
    context = HydraContext(config_loader=None, callbacks=callbacks,  # type: ignore[arg-type]
                           execution_whitelist=execution_whitelist)

    published: list[JobReturn] = []

    def done(ret: JobReturn) -> JobReturn:
        """``finish`` exactly once: a proxy that dies while closing after a published result must not publish
        a failure over it."""
        if published:
            return published[0]
        if ret.overrides is None:
            from omegaconf import OmegaConf

            ret.overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
        published.append(ret)
        if finish is not None:
            finish(ret)
        return ret

    try:
        settings = proxy_settings(config)
        with proxy_for_job(settings):
            HydraConfig.instance().set_config(config)
            ret = run_job(hydra_context=context, task_function=task_function, config=config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            return done(ret)
    except (ProxyError, ValueError) as err:  # the proxy would not start, or died mid-run
        log.error("%s: %s", type(err).__name__, err)
        return done(_failed(err))


def _write_result_file(path: str, ret: JobReturn) -> None:
    tmp = Path(path).with_suffix(".tmp")
    try:
        data = pickle.dumps(ret, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # noqa: BLE001 - an unpicklable return value fails this job only
        ret = _failed(RuntimeError(f"the job's result could not be sent back: {err}"))
        data = pickle.dumps(ret, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _termination_message(text: str) -> None:
    """Kubernetes shows this file's content as the container's termination message (run error details)."""
    if os.path.exists(TERMINATION_LOG) and os.access(TERMINATION_LOG, os.W_OK):
        try:
            with open(TERMINATION_LOG, "w") as fh:
                fh.write(text[:4000])
        except OSError:
            pass


def run_env(kfp_run_id: str, options: dict[str, Any]) -> dict[str, str]:
    """``NAVITUNE_KFP_RUN_ID`` / ``NAVITUNE_KFP_RUN_URL`` of this job's run (see the module docstring); empty when
    the id is unknown: nothing given, or a placeholder no runner resolved."""
    run_id = (kfp_run_id or "").strip()
    if not run_id or "{{" in run_id:
        return {}
    env = {ENV_KFP_RUN_ID: run_id}
    base = str(options.get(UI_OPTION) or "").rstrip("/")
    if base:
        env[ENV_KFP_RUN_URL] = f"{base}/#/runs/details/{run_id}"
    return env


def run(config_yaml: str, task_function: str, run_name: str, options_json: str, kfp_run_id: str = "") -> str:
    """The component's body (see the module docstring); returns the result JSON or raises :class:`JobFailed`."""
    from . import results

    options = json.loads(options_json or "{}")
    for var in (ENV_KFP_RUN_ID, ENV_KFP_RUN_URL):  # never a value inherited from elsewhere (kfp.local jobs inherit env)
        os.environ.pop(var, None)
    os.environ.update(run_env(kfp_run_id, options))  # before the job: its task reads them
    config = load_config(config_yaml)

    def finish(ret: JobReturn) -> None:
        """Hand the result back (inside the job's proxy, if it runs one: the study is reached through it)."""
        result_file = os.environ.get(ENV_KFP_RESULT_FILE)
        if result_file:
            _write_result_file(result_file, ret)
        if options.get("publish"):
            channel = results.channel(config)
            try:
                if channel is None:
                    raise ValueError("the job is not a trial of a study in a database")
                results.ResultStore(*channel).publish(run_name, results.encode(ret, run_name))
            except Exception as err:  # noqa: BLE001 - without its result the run must not look successful
                line = (f"the result of run {run_name} could not be written to the study storage: "
                        f"{type(err).__name__}: {err}")
                _termination_message(line)
                raise JobFailed(line) from None

    try:
        task = load_task(task_function)
    except Exception as err:  # noqa: BLE001 - reported as the job's failure, like a task error
        ret = _failed(ImportError(f"cannot load the task function {task_function!r}: {type(err).__name__}: {err}"))
        finish(ret)
    else:
        ret = run_hydra_job(config, task, options.get("execution_whitelist"), finish)
    payload = results.encode(ret, run_name)
    if ret.status != JobStatus.COMPLETED:
        line = results.error_line(payload)
        _termination_message(line)
        print(f"navitune job {run_name} failed: {line}", file=sys.stderr, flush=True)
        raise JobFailed(line)
    return json.dumps(payload)
