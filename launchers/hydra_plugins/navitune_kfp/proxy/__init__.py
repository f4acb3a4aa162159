"""The Cloud SQL Auth Proxy beside each remote job: ``proxy.mode`` = ``none`` | ``process`` | ``native``.

Why two modes: a KFP v2 job pod has no SDK sidecar API. Upstream KFP added ``initContainers`` (with
``restartPolicy: Always``, a Kubernetes *native sidecar*) to ``KubernetesExecutorConfig`` in July 2026
(kubeflow/pipelines#13651), after kfp-kubernetes 2.17.3, so ``native`` writes that platform-spec entry
directly and needs a backend that knows the field. ``process`` runs the proxy as a supervised child process
inside the job container instead, which works on any KFP v2 backend and with ``backend=local``.

Modules: ``hydra_plugins.navitune_shared.proxy_settings`` (validation: the app's config check uses it too), ``supervisor`` (mode ``process``), ``sidecar`` (platform-spec patches),
``schema`` (upstream's initContainers schema). Pieces (all importable without kfp; kfp/kfp-kubernetes are imported lazily where used):

- :func:`proxy_settings` reads and validates the job config's ``proxy`` node (one-line ``ValueError``).
- :func:`supervised_proxy` (mode ``process``) starts the proxy, waits for its port, yields, stops it, and
  turns a proxy death mid-run into :class:`ProxyDied` in the job's main thread.
- :func:`proxy_for_job` is what the remote job wraps its task in, for every mode.
- :func:`native_sidecar_container`, :func:`credentials_volume`, :func:`add_native_sidecar` and
  :func:`apply_proxy` patch the compiled pipeline YAML's Kubernetes platform spec (mode ``native``, and the
  credentials secret for ``process``). Secrets are referenced by name only, never by value.
"""

from .schema import check_executor_config
from hydra_plugins.navitune_shared.proxy_settings import (
    CONTAINER_NAME, CREDENTIALS_DIR, DEFAULT_IMAGE, DEFAULT_LIMITS, DEFAULT_PORT, DEFAULT_REQUESTS, HOST, MODES,
    ProxyDied, ProxyError, ProxySettings, ProxyStartError, ProxyStartTimeout, proxy_settings,
)
from .sidecar import (
    add_native_sidecar, apply_proxy, credentials_volume, native_sidecar_container, read_pipeline_docs,
    write_pipeline_docs,
)
from .supervisor import ProxyHandle, proxy_for_job, supervised_proxy, wait_for_port

__all__ = [
    "CONTAINER_NAME", "CREDENTIALS_DIR", "DEFAULT_IMAGE", "DEFAULT_LIMITS", "DEFAULT_PORT", "DEFAULT_REQUESTS", "HOST",
    "MODES", "ProxyDied", "ProxyError", "ProxyHandle", "ProxySettings", "ProxyStartError", "ProxyStartTimeout",
    "add_native_sidecar", "apply_proxy", "check_executor_config", "credentials_volume", "native_sidecar_container",
    "proxy_for_job", "proxy_settings", "read_pipeline_docs", "supervised_proxy", "wait_for_port", "write_pipeline_docs",
]
