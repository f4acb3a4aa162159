"""``proxy.*``: the modes, defaults and validated settings of the Cloud SQL Auth Proxy beside a job. Shared: the
kfp launcher and its remote job run the proxy with them, and the app checks its ``proxy`` config group with the
same rules before anything runs."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import invalid

MODES = ("none", "process", "native")
DEFAULT_IMAGE = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1"
DEFAULT_PORT = 3306
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}  # the proxy is light; requests count for scheduling
DEFAULT_LIMITS = {"memory": "256Mi"}  # no CPU limit: throttling the proxy would slow every DB call
CONTAINER_NAME = "cloud-sql-proxy"
CREDENTIALS_DIR = "/var/secrets/cloudsql"
HOST = "127.0.0.1"  # the proxy listens on loopback: the job container and a native sidecar share the pod network
# A connection name: project:region:instance, the project optionally domain-scoped (example.com:project).
INSTANCE_RE = re.compile(r"(?:[a-z0-9][a-z0-9.-]*:)?[a-z][a-z0-9-]*:[a-z][a-z0-9-]*:[a-z][a-z0-9-]*")
SECRET_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a Kubernetes object name (DNS-1123)
SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]{1,253}")
QUANTITY_RE = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
# Flags that would put a credential (or a second listener) into the compiled YAML or the command line.
CREDENTIAL_FLAGS = ("--token", "--credentials-json", "--login-token", "-t", "-j")
RESERVED_FLAGS = ("--port", "-p", "--credentials-file", "-c")
INTERRUPT_SIGNAL = signal.SIGUSR1  # how the watcher thread interrupts the job's main thread


class ProxyError(RuntimeError):
    """The Cloud SQL proxy could not be started or stopped as asked."""


class ProxyStartError(ProxyError):
    """The proxy exited, or could not be executed, before it accepted connections."""


class ProxyStartTimeout(ProxyStartError):
    """The proxy did not accept connections on its port within ``start_timeout_s``."""


class ProxyDied(ProxyError):
    """The proxy exited while the job was running: the job fails (and the sweeper may retry the trial)."""


@dataclass(frozen=True)
class ProxySettings:
    """A validated ``proxy`` config node; see conf/proxy/cloudsql.yaml for what each key means."""

    mode: str  # process | native (``none`` is represented by ``proxy_settings(...) is None``)
    instance: str  # Cloud SQL connection name project:region:instance
    port: int = DEFAULT_PORT
    image: str = DEFAULT_IMAGE
    args: tuple[str, ...] = ()
    credentials_secret: str | None = None  # Kubernetes Secret holding a service-account key (name only)
    credentials_key: str = "credentials.json"  # key of that Secret (the file name under CREDENTIALS_DIR)
    command: tuple[str, ...] | None = None  # process mode: replaces cloud-sql-proxy; {instance}, {port} expand
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 5.0
    requests: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REQUESTS))
    limits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    @property
    def credentials_file(self) -> str | None:
        """Where the key file appears in the pod (job container and sidecar), or None without a secret."""
        return f"{CREDENTIALS_DIR}/{self.credentials_key}" if self.credentials_secret else None

    def proxy_args(self) -> list[str]:
        """The cloud-sql-proxy arguments shared by both modes (instance, port, credentials file, user args)."""
        out = [self.instance, "--port", str(self.port)]
        if self.credentials_file:
            out += ["--credentials-file", self.credentials_file]
        return out + list(self.args)

    def process_command(self) -> list[str]:
        """The command of mode ``process``: ``cloud-sql-proxy <instance> --port <port> <args...>`` or
        ``command`` with ``{instance}`` and ``{port}`` substituted (``args`` are not appended to it)."""
        if self.command:
            return [a.replace("{instance}", self.instance).replace("{port}", str(self.port)) for a in self.command]
        return ["cloud-sql-proxy", *self.proxy_args()]


# ------------------------------------------------------------------------------------------ config
def _bad(key: str, value: Any, allowed: str) -> ValueError:
    return invalid(ValueError, None, f"config proxy.{key}" if key else "config proxy", value, allowed)


def _as_container(node: Any) -> Any:
    """Plain Python values from an OmegaConf node (dataclass, DictConfig, ListConfig) or a mapping."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    if hasattr(node, "__dataclass_fields__"):
        return OmegaConf.to_container(OmegaConf.structured(node), resolve=True)
    return node


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _bad(key, value, "a list of strings")
    return tuple(value)


def _quantities(key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(key, value, "a mapping of resource name to Kubernetes quantity, e.g. {cpu: 100m}")
    out = {}
    for name, qty in value.items():
        if not isinstance(name, str) or not QUANTITY_RE.fullmatch(str(qty)):
            raise _bad(f"{key}.{name}", qty, "a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi")
        out[name] = str(qty)
    return out


def proxy_settings(cfg: Any) -> ProxySettings | None:
    """The proxy a job needs, from the job config's top-level ``proxy`` node; None when absent or ``none``.

    Why here and not only in the schema: the remote job re-reads its composed config, and the CLI's preflight
    calls this too, so a bad value fails with one line (``ValueError`` naming ``proxy.<key>`` and what is
    allowed) before anything is compiled, submitted or started. Secret-bearing flags are rejected without
    echoing their value."""
    from omegaconf import DictConfig, OmegaConf

    if cfg is None:
        return None
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg) if hasattr(cfg, "__dataclass_fields__") else OmegaConf.create(cfg)
    node = OmegaConf.select(cfg, "proxy", default=None)
    if node is None:
        return None
    raw = _as_container(node)
    if not isinstance(raw, Mapping):
        raise _bad("", raw, "a mapping with mode, instance, port, ...")
    mode = raw.get("mode", "none")
    if mode not in MODES:
        raise _bad("mode", mode, ", ".join(MODES))
    if mode == "none":
        return None
    instance = raw.get("instance")
    if not isinstance(instance, str) or not INSTANCE_RE.fullmatch(instance):
        raise _bad("instance", instance, "a Cloud SQL connection name project:region:instance")
    port = raw.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _bad("port", port, "a TCP port 1..65535")
    image = raw.get("image", DEFAULT_IMAGE)
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise _bad("image", image, "a container image reference such as " + DEFAULT_IMAGE)
    args = _str_list("args", raw.get("args"))
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in CREDENTIAL_FLAGS:
            raise ValueError(f"invalid config proxy.args: {flag} would put a credential into the pipeline; "
                             "allowed: proxy.credentials_secret (a Kubernetes Secret name) or Workload Identity")
        if flag in RESERVED_FLAGS:
            raise ValueError(f"invalid config proxy.args: {flag} is set by navitune; "
                             "allowed: proxy.port, proxy.credentials_secret")
    secret = raw.get("credentials_secret")
    if secret is not None and (not isinstance(secret, str) or not SECRET_NAME_RE.fullmatch(secret)):
        raise _bad("credentials_secret", secret, "null or a Kubernetes Secret name (lowercase DNS-1123)")
    key = raw.get("credentials_key", "credentials.json")
    if not isinstance(key, str) or not SECRET_KEY_RE.fullmatch(key):
        raise _bad("credentials_key", key, "a Secret key: letters, digits, '-', '_', '.'")
    command = _str_list("command", raw.get("command")) or None
    start_timeout = raw.get("start_timeout_s", 30.0)
    if isinstance(start_timeout, bool) or not isinstance(start_timeout, (int, float)) or not 0 < start_timeout <= 600:
        raise _bad("start_timeout_s", start_timeout, "seconds in (0, 600]")
    stop_timeout = raw.get("stop_timeout_s", 5.0)
    if isinstance(stop_timeout, bool) or not isinstance(stop_timeout, (int, float)) or not 0 < stop_timeout <= 600:
        raise _bad("stop_timeout_s", stop_timeout, "seconds in (0, 600]")
    return ProxySettings(
        mode=mode, instance=instance, port=port, image=image, args=args, credentials_secret=secret,
        credentials_key=key, command=command, start_timeout_s=float(start_timeout),
        stop_timeout_s=float(stop_timeout),
        requests=_quantities("requests", raw["requests"]) if "requests" in raw else dict(DEFAULT_REQUESTS),
        limits=_quantities("limits", raw["limits"]) if "limits" in raw else dict(DEFAULT_LIMITS),
    )
