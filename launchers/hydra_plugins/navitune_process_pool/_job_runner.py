"""Run one Hydra job inside a forked job process, without Hydra's defensive config copies.

``hydra.core.utils.run_job`` deep-copies the whole config four times per job (two HydraConfig copies,
the task config, the Hydra config for the JobReturn): ~35 ms of a no-op job's ~100 ms. A forked job
process owns its config and ends after the job: HydraConfig's view of the ``hydra`` node is copied
once and shared with the JobReturn, and the task's config is copied without first copying the hydra node. Everything a job can observe is as with ``run_job``:
the output directory, ``.hydra/{config,hydra,overrides}.yaml``, logging, ``env_set``, ``chdir``, the
JobReturn's fields. Apps with job callbacks (``on_job_start``/``on_job_end``) take Hydra's own path.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    _flush_loggers,
    _log_job_error_to_file,
    _save_config,
    configure_log,
    env_override,
    run_job,
)
from hydra.experimental.callback import Callback
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


def run_job_in_fork(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig,
                    job_dir_key: str = "hydra.sweep.dir", job_subdir_key: str = "hydra.sweep.subdir",
                    before_task: Callable[[], None] | None = None) -> JobReturn:
    """``run_job`` for a process that owns ``config`` and ends after the job. ``before_task`` is called
    once the job is set up (directory, ``.hydra`` files, logging), right before the task function (with
    job callbacks, which Hydra's ``run_job`` calls, before ``run_job``)."""
    if _has_job_callbacks(hydra_context):
        if before_task is not None:
            before_task()
        return run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                       job_dir_key=job_dir_key, job_subdir_key=job_subdir_key)
    from hydra._internal.execution_policy import execution_whitelist

    with execution_whitelist(hydra_context.execution_whitelist, reset=True):
        return _run(hydra_context, task_function, config, job_dir_key, job_subdir_key, before_task)


def _has_job_callbacks(hydra_context: HydraContext) -> bool:
    callbacks = getattr(hydra_context.callbacks, "callbacks", None)
    if callbacks is None:
        return hydra_context.callbacks is not None  # an unknown Callbacks object: be safe
    return any(
        type(cb).on_job_start is not Callback.on_job_start or type(cb).on_job_end is not Callback.on_job_end
        for cb in callbacks
    )


def _run(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig,
         job_dir_key: str, job_subdir_key: str | None, before_task: Callable[[], None] | None = None) -> JobReturn:
    HydraConfig.instance().set_config(config)  # resolvers such as ${hydra:job.num} in the job's directory
    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    hydra_cfg = HydraConfig.instance().cfg  # the one copy: {"hydra": ...}, parented to the job's config
    assert isinstance(hydra_cfg, DictConfig)
    for runtime in (config.hydra.runtime, hydra_cfg.hydra.runtime):
        with read_write(runtime), open_dict(runtime):
            runtime.output_dir = os.path.abspath(output_dir)
    env_set = hydra_cfg.hydra.job.env_set
    with read_write(env_set):
        OmegaConf.resolve(env_set)

    ret = JobReturn()
    ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)  # type: ignore[assignment]
    ret.cfg = _copy_without_hydra(config)
    ret.hydra_cfg = hydra_cfg
    hydra = hydra_cfg.hydra

    Path(output_dir).mkdir(parents=True, exist_ok=True)
    if hydra.job.chdir:
        os.chdir(output_dir)
        ret.working_dir = output_dir
    else:
        ret.working_dir = os.getcwd()
    configure_log(config.hydra.job_logging, config.hydra.verbose,
                  execution_whitelist=hydra_context.execution_whitelist)
    if config.hydra.output_subdir is not None:
        hydra_output = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
        _save_config(ret.cfg, "config.yaml", hydra_output)
        _save_config(hydra_cfg, "hydra.yaml", hydra_output)
        _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)
    ret.task_name = JobRuntime.instance().get("name")
    task_cfg = ret.cfg
    if before_task is not None:
        before_task()

    with env_override(hydra.job.env_set):
        try:
            ret.return_value = task_function(task_cfg)
            ret.status = JobStatus.COMPLETED
        except Exception as err:
            ret.return_value = err
            ret.status = JobStatus.FAILED
            _remember_traceback(ret, err)
            try:
                _log_job_error_to_file()
            except Exception:
                pass
        finally:
            _flush_loggers()
    return ret


def _copy_without_hydra(config: DictConfig) -> DictConfig:
    """``deepcopy(config)`` minus its ``hydra`` node, without copying that (large) node first: it is
    taken out of the container for the copy and put back, so it keeps its parent for interpolations."""
    content = config.__dict__["_content"]
    hydra_node = content.pop("hydra")
    try:
        return copy.deepcopy(config)
    finally:
        content["hydra"] = hydra_node


def _remember_traceback(ret: JobReturn, err: Exception) -> None:
    """The remote-traceback fields Hydra's run_job fills, so the sweep can show where the job failed."""
    try:
        from hydra.core import utils

        ret._remote_traceback = utils._serialize_traceback(err.__traceback__)
        ret._remote_exception_chain = utils._serialize_exception_chain(err)
        ret._remote_exception_group = utils._serialize_exception_group(err)
    except Exception:
        pass
