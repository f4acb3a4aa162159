"""The job pipeline: one Lightweight Python component that runs one Hydra job, compiled once per sweep.

Why one pipeline for the whole sweep: every job is the same program with a different config, so each job is a
run of the same compiled spec with its config as a parameter (compiling per job would cost time and make
runs of one sweep incomparable). The component runs in the job image with kfp already installed
(``install_kfp_package=False``) and nothing pip-installed at start (``packages_to_install=[]``): a pod start
never depends on PyPI, and the job runs exactly the pinned versions of the image.

The component also gets the id of the KFP run it belongs to (``kfp_run_id``), from KFP's placeholder
``{{$.pipeline_job_uuid}}`` (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``), which the backend (and ``kfp.local``)
replaces with the run's id when the task starts. It is a constant argument of the task inside the pipeline, not
a pipeline parameter: the run's parameters stay :data:`PARAMETERS`, so callers of a compiled pipeline (the
launcher, anyone re-running it from the KFP UI) pass the same four values as before.
"""

# no `from __future__ import annotations`: kfp reads the component's annotations as types

import math
import tempfile
from pathlib import Path
from typing import Any

from .settings import LauncherSettings

PARAMETERS = ("config_yaml", "task_function", "run_name", "options_json")


def navitune_job(config_yaml: str, task_function: str, run_name: str, options_json: str,
                 kfp_run_id: str = "") -> str:
    """Run one Hydra job of a sweep in this container and return its result as JSON (``kfp_run_id``: the KFP
    run's id, resolved by KFP from the placeholder the pipeline passes)."""
    from hydra_plugins.navitune_kfp.job import run

    return run(config_yaml, task_function, run_name, options_json, kfp_run_id=kfp_run_id)


def _configure(task: Any, settings: LauncherSettings) -> None:
    """Resources, scheduling, environment and secrets of the job's pod, through kfp / kfp-kubernetes."""
    from kfp import kubernetes as k8s

    task.set_caching_options(False)  # a retried or re-run trial must run again, never reuse an old result
    if settings.cpu_request:
        task.set_cpu_request(settings.cpu_request)
    if settings.cpu_limit:
        task.set_cpu_limit(settings.cpu_limit)
    if settings.memory_request:
        task.set_memory_request(settings.memory_request)
    if settings.memory_limit:
        task.set_memory_limit(settings.memory_limit)
    for name, value in settings.env.items():
        task.set_env_variable(name, value)
    for secret in settings.secrets:  # by reference: the compiled spec names the Secret and its keys only
        k8s.use_secret_as_env(task, secret_name=secret.secret_name,
                              secret_key_to_env=dict(secret.secret_key_to_env), optional=secret.optional)
    for key, value in settings.node_selector.items():
        k8s.add_node_selector(task, label_key=key, label_value=value)
    for t in settings.tolerations:
        k8s.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect,
                           toleration_seconds=t.toleration_seconds)
    if settings.image_pull_policy:
        k8s.set_image_pull_policy(task, settings.image_pull_policy)
    for key, value in settings.pod_labels.items():
        k8s.add_pod_label(task, key, value)
    for key, value in settings.pod_annotations.items():
        k8s.add_pod_annotation(task, key, value)
    if settings.timeout_s is not None:  # the pod's own deadline: holds even if the launcher is gone
        k8s.set_timeout(task, int(math.ceil(settings.timeout_s)))


def compile_pipeline(settings: LauncherSettings, name: str, description: str, path: Path,
                     proxy: Any = None) -> Path:
    """Compile the job pipeline to ``path`` (YAML), with the Cloud SQL proxy's platform-spec entries when
    ``proxy`` (a ``proxy.ProxySettings``) asks for them."""
    from kfp import dsl

    component = dsl.component(navitune_job, base_image=settings.image, install_kfp_package=False,
                              packages_to_install=[])

    @dsl.pipeline(name=name, description=description)
    def job_pipeline(config_yaml: str, task_function: str, run_name: str, options_json: str) -> str:
        task = component(config_yaml=config_yaml, task_function=task_function, run_name=run_name,
                         options_json=options_json, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        _configure(task, settings)
        return task.output

    return compile_with_proxy(job_pipeline, path, proxy)


def compile_with_proxy(pipeline_func: Any, path: Path, proxy: Any = None) -> Path:
    """Compile ``pipeline_func`` with kfp's compiler to ``path`` (YAML), then add the Cloud SQL proxy's
    platform-spec entries when ``proxy`` (a ``proxy.ProxySettings``) asks for them (the job and the driver
    pipeline alike)."""
    from kfp import compiler

    path.parent.mkdir(parents=True, exist_ok=True)
    if proxy is None:
        compiler.Compiler().compile(pipeline_func, str(path))
        return path
    from . import proxy as proxy_mod

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / path.name
        compiler.Compiler().compile(pipeline_func, str(raw))
        docs = proxy_mod.apply_proxy(proxy_mod.read_pipeline_docs(raw), proxy)
    proxy_mod.write_pipeline_docs(docs, path)
    return path


def pipeline_spec_for_api(path: Path) -> dict[str, Any]:
    """The ``pipeline_spec`` field of a run (what ``kfp.Client`` sends for a YAML package), parsed once per sweep
    and checked against kfp's protos, so each submission only sends it."""
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    platform: dict[str, Any] = {}
    for doc in docs[1:]:
        platform.update(doc)
    platform_spec = json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    if platform_spec == pipeline_spec_pb2.PlatformSpec():
        return json_format.MessageToDict(spec)
    return {"pipeline_spec": json_format.MessageToDict(spec), "platform_spec": json_format.MessageToDict(platform_spec)}
