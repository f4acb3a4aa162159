"""Mode ``native`` (and the credentials volume of ``process``): patches of the compiled pipeline's Kubernetes
platform spec. Secrets are referenced by name only, never by value."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .schema import check_executor_config
from hydra_plugins.navitune_shared.proxy_settings import CONTAINER_NAME, CREDENTIALS_DIR, ProxySettings


def native_sidecar_container(settings: ProxySettings) -> dict:
    """The proxy as an entry of ``KubernetesExecutorConfig.initContainers`` (JSON names, as kfp writes them).

    The shape is upstream's ``InitContainer`` message (kubeflow/pipelines#13651: name, image, command, args,
    env, volumeMounts, restartPolicy, resources) and nothing else, because the backend parses the platform
    spec strictly. ``restartPolicy: Always`` makes it a native sidecar (Kubernetes >= 1.29): it starts before
    the job container, keeps running beside it, and is stopped after it. That message has no securityContext
    or probes: the backend applies its Pod-Security-Standards security context to init containers, the
    proxy image runs as a non-root user (distroless ``nonroot``), and the job waits for the port itself
    (:func:`proxy_for_job`). The credentials secret, if any, is mounted by volume name only."""
    entry: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        # the image's entrypoint is /cloud-sql-proxy; --exit-zero-on-sigterm: a sidecar stopped at the end
        # of the job is not a failure
        "args": [*settings.proxy_args(), "--structured-logs", "--exit-zero-on-sigterm"],
        "restartPolicy": "Always",
    }
    if settings.credentials_secret:
        entry["volumeMounts"] = [{"volumeName": settings.credentials_secret, "mountPath": CREDENTIALS_DIR}]
    resources = {k: dict(v) for k, v in (("requests", settings.requests), ("limits", settings.limits)) if v}
    if resources:
        entry["resources"] = resources
    return entry


def credentials_volume(settings: ProxySettings) -> dict | None:
    """The ``secretAsVolume`` entry that mounts the credentials secret at :data:`CREDENTIALS_DIR` (the same
    shape ``kfp.kubernetes.use_secret_as_volume`` writes), or None without a secret.

    The KFP driver names the pod volume after the secret, which is how the sidecar's ``volumeMounts`` finds it;
    it also mounts it into the job container, which is what mode ``process`` needs."""
    name = settings.credentials_secret
    if not name:
        return None
    return {"secretName": name, "secretNameParameter": {"runtimeValue": {"constant": name}},
            "mountPath": CREDENTIALS_DIR, "optional": False}


def read_pipeline_docs(path: str | os.PathLike) -> list[dict]:
    """The documents of a pipeline YAML that kfp's compiler wrote (one, or two with a platform spec)."""
    import yaml

    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]


def write_pipeline_docs(docs: Sequence[dict], path: str | os.PathLike) -> None:
    """Write the documents back as one multi-document YAML (what ``kfp.Client`` uploads and runs)."""
    import yaml

    Path(path).write_text(yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False))


def _platform_executors(docs: list[dict]) -> dict:
    """``platforms.kubernetes.deploymentSpec.executors`` of the platform-spec document, created if missing."""
    platform = next((d for d in docs if isinstance(d, dict) and "platforms" in d), None)
    if platform is None:
        platform = {"platforms": {}}
        docs.append(platform)
    k8s = platform["platforms"].setdefault("kubernetes", {})
    return k8s.setdefault("deploymentSpec", {}).setdefault("executors", {})


def _container_executors(docs: list[dict]) -> list[str]:
    spec = next((d for d in docs if isinstance(d, dict) and "deploymentSpec" in d and "root" in d), None)
    if spec is None:
        raise ValueError("not a compiled KFP pipeline: no document with root and deploymentSpec")
    execs = spec["deploymentSpec"].get("executors", {})
    return [name for name, ex in execs.items() if isinstance(ex, dict) and "container" in ex]


def add_native_sidecar(
    pipeline_spec: Sequence[dict] | dict,
    container: dict,
    *,
    secret_volumes: Iterable[dict] = (),
    executors: Iterable[str] | None = None,
) -> list[dict]:
    """Insert ``container`` (from :func:`native_sidecar_container`) as an ``initContainers`` entry of every
    container executor's Kubernetes config, plus ``secret_volumes`` (``secretAsVolume`` entries, e.g. from
    :func:`credentials_volume`) that its ``volumeMounts`` refer to.

    ``pipeline_spec`` is the list of YAML documents of the compiled pipeline (:func:`read_pipeline_docs`):
    the pipeline spec and, if kfp wrote one, the platform spec; a lone pipeline-spec dict is accepted too.
    Returns a new list (the input is not modified) whose platform-spec document exists; write it back with
    :func:`write_pipeline_docs`. Idempotent: an init container of the same name is replaced and identical
    volume entries are not repeated. The result is checked against upstream's ``KubernetesExecutorConfig``
    schema when kfp-kubernetes is installed (:func:`check_executor_config`).

    Needs a KFP backend that knows ``initContainers`` (first release after 2.17.x containing
    kubeflow/pipelines#13651); older backends reject or ignore the field — use ``proxy.mode=process`` there."""
    docs = copy.deepcopy([pipeline_spec] if isinstance(pipeline_spec, dict) else list(pipeline_spec))
    if not container.get("name") or not container.get("image"):
        raise ValueError("an init container needs a name and an image")
    if container["name"] == "kfp-launcher":
        raise ValueError('init container name "kfp-launcher" is reserved by Kubeflow Pipelines')
    names = list(executors) if executors is not None else _container_executors(docs)
    table = _platform_executors(docs)
    volumes = [copy.deepcopy(v) for v in secret_volumes]
    for name in names:
        cfg = table.setdefault(name, {})
        inits = [c for c in cfg.get("initContainers", []) if c.get("name") != container["name"]]
        cfg["initContainers"] = [*inits, copy.deepcopy(container)]
        for vol in volumes:
            existing = cfg.setdefault("secretAsVolume", [])
            if vol not in existing:
                existing.append(copy.deepcopy(vol))
        check_executor_config(cfg)
    return docs


def apply_proxy(pipeline_spec: Sequence[dict] | dict, settings: ProxySettings | None) -> list[dict]:
    """Everything the compiled pipeline needs for ``settings`` (what the launcher calls once per sweep):
    ``native`` → the sidecar and its credentials volume; ``process`` → the credentials volume for the job
    container, if a secret is set; ``None`` → the documents unchanged (copied)."""
    docs = copy.deepcopy([pipeline_spec] if isinstance(pipeline_spec, dict) else list(pipeline_spec))
    if settings is None:
        return docs
    volume = credentials_volume(settings)
    if settings.mode == "native":
        return add_native_sidecar(docs, native_sidecar_container(settings), secret_volumes=[volume] if volume else [])
    if volume is not None:
        table = _platform_executors(docs)
        for name in _container_executors(docs):
            existing = table.setdefault(name, {}).setdefault("secretAsVolume", [])
            if volume not in existing:
                existing.append(copy.deepcopy(volume))
    return docs
