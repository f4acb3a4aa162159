"""``hydra/launcher=kfp``: each job of a sweep as a Kubeflow Pipelines v2 run of one pipeline compiled per sweep.

``backend=local`` runs the compiled component on this machine with ``kfp.local`` (no cluster);
``backend=remote`` submits runs to a KFP API with ``kfp.Client``. Like ``process_pool``, the launcher offers
``submit`` (one job, a Future) besides Hydra's batch ``launch``, so an asynchronous sweeper keeps ``n_jobs``
runs in flight. kfp is imported only when a sweep uses this launcher: Hydra imports every plugin module at
each start.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .settings import check


@dataclass
class KFPLauncherConf:
    _target_: str = "hydra_plugins.navitune_kfp.kfp_launcher.KFPLauncher"
    backend: str = "local"  # local: kfp.local on this machine | remote: a KFP API (kfp.Client)
    host: Optional[str] = None  # remote: the KFP API URL, e.g. http://localhost:8080 after a port-forward
    namespace: Optional[str] = None  # remote, multi-user KFP: the profile namespace
    experiment: Optional[str] = None  # KFP experiment of the sweep's runs; null: the study name (or job name)
    pipeline_name: Optional[str] = None  # null: derived from the experiment (lowercase, '-')
    image: str = "navitune-job:latest"  # the job image (`make image`); remote runs need it pushed to a registry
    image_pull_policy: Optional[str] = None  # Always | IfNotPresent | Never
    service_account: Optional[str] = None  # Kubernetes service account of the run's pods (e.g. Workload Identity)
    # one simulation needs one core and well under 1 GiB; requests = limits gives the pod Guaranteed QoS
    cpu_request: Optional[str] = "1"
    cpu_limit: Optional[str] = "1"
    memory_request: Optional[str] = "2Gi"
    memory_limit: Optional[str] = "2Gi"
    node_selector: Dict[str, str] = field(default_factory=dict)  # e.g. {cloud.google.com/gke-nodepool: simulators}
    tolerations: List[Dict[str, Any]] = field(default_factory=list)  # {key, operator, value, effect, toleration_seconds}
    secrets: List[Dict[str, Any]] = field(default_factory=list)  # {secret_name, secret_key_to_env: {key: ENV}, optional}
    env: Dict[str, str] = field(default_factory=dict)  # plain (non-secret) environment variables of the job
    pod_labels: Dict[str, str] = field(default_factory=dict)
    pod_annotations: Dict[str, str] = field(default_factory=dict)
    pipeline_root: Optional[str] = None  # remote: where KFP keeps outputs (e.g. gs://bucket/kfp); null: the default
    timeout_s: Optional[float] = None  # a run longer than this is terminated and its job fails
    poll_interval: float = 10.0  # remote: seconds between two looks at a run's state
    n_jobs: int = 2  # runs in flight at once
    compile_only: bool = False  # write <sweep dir>/pipeline.yaml and submit nothing
    api_retries: int = 6  # remote: retries of an API call that failed with HTTP 5xx / 429 / no connection
    api_backoff_s: float = 1.0  # first pause between retries; doubles each time (at most 60 s)
    auth_token_env: Optional[str] = None  # remote: NAME of an environment variable holding a bearer token
    ssl_ca_cert: Optional[str] = None
    verify_ssl: bool = True
    ui_host: Optional[str] = None  # for the run links in the log; null: host
    cancel_on_shutdown: bool = False  # remote: terminate in-flight runs when the sweep stops (else re-attachable)


ConfigStore.instance().store(group="hydra/launcher", name="kfp", node=KFPLauncherConf, provider="navitune")


class KFPLauncher(Launcher):
    """Thin Hydra front end of :class:`~._core.KFPLauncherCore`."""

    def __init__(self, **kwargs: Any) -> None:
        self.settings = check(kwargs)  # one-line KFPConfigError before anything else happens
        self._core: Any = None

    @property
    def compile_only(self) -> bool:
        return self.settings.compile_only

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from ._core import KFPLauncherCore

        self._core = KFPLauncherCore(self.settings, hydra_context, task_function, config)

    def submit(self, overrides: Sequence[str], job_idx: int) -> "Future[JobReturn]":
        """Start one job as a KFP run (when one of the n_jobs slots is free); the Future resolves to its JobReturn."""
        return self._core.submit(list(overrides), job_idx)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self._core.launch(job_overrides, initial_job_idx)

    def shutdown(self) -> None:
        if self._core is not None:
            self._core.shutdown()
