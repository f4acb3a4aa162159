"""The ``hydra.launcher`` settings of ``hydra/launcher=kfp``, checked in one place.

Why a separate module without kfp: Hydra instantiates the launcher (and so runs these checks) before the
sweeper creates a study or anything is compiled, written or submitted, and a bad value must end the command
with one line naming ``hydra.launcher.<key>`` and what is allowed (:class:`KFPConfigError` is a
``CompactHydraException``, which Hydra prints as just its message).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hydra_plugins.navitune_shared.protocol import default_prepare_ahead

from hydra.errors import CompactHydraException
from hydra_plugins.navitune_shared.errors import invalid
from hydra_plugins.navitune_shared.redact import without_userinfo

BACKENDS = ("local", "remote")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")
OPERATORS = ("Equal", "Exists")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SECRET_KEYS = ("secret_name", "secret_key_to_env", "optional")
# the quantity syntax kfp's SDK accepts (PipelineTask.set_cpu_* / set_memory_*), so a value that passes here
# also compiles
CPU_RE = re.compile(r"([0-9]*[.])?[0-9]+m?")
MEMORY_RE = re.compile(r"[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?")
MEMORY_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
SECRET_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# env names that say they hold a secret: a literal value there would be compiled into the pipeline, its runs and
# their descriptions in clear (the value itself need not look like one: a token is just letters)
#: variable names that say "secret" (PASS covers PASSWORD/PASSWD/PASSPHRASE, PWD, AUTH, CREDENTIAL(S), ...)
SECRET_ENV_NAME = re.compile(r"TOKEN|PASS|PWD|SECRET|KEY|AUTH|CREDENTIAL|COOKIE|SESSION", re.IGNORECASE)
PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
CPU_ALLOWED = "a CPU quantity such as 500m, 0.5 or 2"
MEMORY_ALLOWED = ("a memory quantity: a whole number with an optional suffix K, Ki, M, Mi, G, Gi, T, Ti, P, Pi, "
                  "E, Ei (e.g. 512Mi, 2Gi)")


class KFPConfigError(CompactHydraException):
    """Bad ``hydra.launcher`` input for ``kfp``, reported on one line before anything is written or submitted."""


def safe_name(text: str) -> str:
    """``text`` as a KFP run name that is also a safe file name (kfp.local's run directories): characters outside
    A-Z a-z 0-9 . _ - become '-', and no leading or trailing '.' or '-' ("..", "../x" cannot name a directory).
    The sweeper already refuses study names outside that set; this keeps names safe whatever set them."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "run"


def fail(key: str, value: Any, allowed: str) -> KFPConfigError:
    """The one line every bad setting produces: ``kfp: invalid hydra.launcher.<key>=<value>; allowed: ...``
    (the value with its secrets masked: a bad host or env value may carry one)."""
    return invalid(KFPConfigError, "kfp", f"hydra.launcher.{key}", value, allowed)


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


@dataclass(frozen=True)
class SecretEnv:
    """A Kubernetes Secret exposed as environment variables of the job (by name: no value ever leaves it)."""

    secret_name: str
    secret_key_to_env: Mapping[str, str]
    optional: bool = False


@dataclass(frozen=True)
class LauncherSettings:
    """Validated ``hydra.launcher`` values (see :class:`KFPLauncherConf` for what each one means and its default);
    made only by :func:`check`."""

    backend: str
    host: str | None
    namespace: str | None
    experiment: str | None
    pipeline_name: str | None
    image: str
    image_pull_policy: str | None
    service_account: str | None
    cpu_request: str | None
    cpu_limit: str | None
    memory_request: str | None
    memory_limit: str | None
    node_selector: Mapping[str, str]
    tolerations: tuple[Toleration, ...]
    secrets: tuple[SecretEnv, ...]
    env: Mapping[str, str]
    pod_labels: Mapping[str, str]
    pod_annotations: Mapping[str, str]
    pipeline_root: str | None
    timeout_s: float | None
    poll_interval: float
    n_jobs: int
    prepare_ahead: int
    compile_only: bool
    api_retries: int
    api_backoff_s: float
    auth_token_env: str | None
    ssl_ca_cert: str | None
    verify_ssl: bool
    ui_host: str | None
    cancel_on_shutdown: bool


@dataclass
class KFPLauncherConf:
    _target_: str = "hydra_plugins.navitune_kfp.kfp_launcher.KFPLauncher"
    backend: str = "local"  # local: kfp.local on this machine | remote: a KFP API (kfp.Client)
    host: Optional[str] = None  # remote: the KFP API URL, e.g. http://localhost:8080 after a port-forward
    namespace: Optional[str] = None  # remote, multi-user KFP: the profile namespace
    experiment: Optional[str] = None  # KFP experiment of the sweep's runs; null: the study name (or navitune)
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
    # jobs composed ahead that wait for a free slot, so a slot is refilled the moment a run ends (before the
    # sweeper has recorded it); an asynchronous sweeper (optuna_async) asks this many trials ahead.
    # null: 1 + n_jobs // 4 (as process_pool); 0: off
    prepare_ahead: Optional[int] = None
    compile_only: bool = False  # write <sweep dir>/pipeline.yaml and submit nothing
    api_retries: int = 6  # remote: retries of an API call that failed with HTTP 5xx / 429 / no connection
    api_backoff_s: float = 1.0  # first pause between retries; doubles each time (at most 60 s)
    auth_token_env: Optional[str] = None  # remote: NAME of an environment variable holding a bearer token
    ssl_ca_cert: Optional[str] = None
    verify_ssl: bool = True
    ui_host: Optional[str] = None  # for the run links in the log; null: host
    cancel_on_shutdown: bool = False  # remote: terminate in-flight runs when the sweep stops (else re-attachable)


# ------------------------------------------------------------------------------------------ helpers
def _defaults() -> dict[str, Any]:
    """The schema's defaults: the one place they are written."""
    return {f.name: f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]
            for f in fields(KFPLauncherConf) if f.name != "_target_"}


def _plain(value: Any) -> Any:
    """Plain Python values from OmegaConf containers (the launcher gets DictConfig / ListConfig nodes)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _opt_str(key: str, value: Any, allowed: str, pattern: re.Pattern | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or (pattern is not None and not pattern.fullmatch(value)):
        raise fail(key, value, allowed)
    return value


def _positive(key: str, value: Any, allowed: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail(key, value, allowed) from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise fail(key, value, allowed)
    return number


def _whole(key: str, value: Any, minimum: int, allowed: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(key, value, allowed)
    return value


def _prepare_ahead(value: Any, n_jobs: int) -> int:
    """Jobs composed ahead of a free slot: null is 1 + n_jobs // 4 (the more runs in flight, the more often one
    ends while the sweeper is busy recording another), at most n_jobs."""
    if value is None:
        return default_prepare_ahead(n_jobs)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= n_jobs:
        raise fail("prepare_ahead", value, f"null (1 + n_jobs // 4) or a whole number 0..n_jobs={n_jobs}")
    return value


def cpu_cores(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(text: str) -> int:
    m = MEMORY_RE.fullmatch(text)
    assert m is not None
    unit = m.group(1) or ""
    return int(text[: len(text) - len(unit)]) * MEMORY_UNITS[unit]


def _quantity(key: str, value: Any, kind: str) -> str | None:
    if value is None:
        return None
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    pattern, allowed = (CPU_RE, CPU_ALLOWED) if kind == "cpu" else (MEMORY_RE, MEMORY_ALLOWED)
    if not isinstance(text, str) or not pattern.fullmatch(text):
        raise fail(key, value, allowed)
    if kind == "cpu" and cpu_cores(text) <= 0 or kind == "memory" and memory_bytes(text) <= 0:
        raise fail(key, value, allowed.replace("a ", "a positive ", 1))
    return text


def _label_key(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    prefix, _, name = text.rpartition("/")
    return bool(LABEL_NAME.fullmatch(name)) and (not prefix or bool(DNS_SUBDOMAIN.fullmatch(prefix)))


def _labels(key: str, value: Any, check_values: bool) -> dict[str, str]:
    value = _plain(value) or {}
    allowed = ("a mapping of Kubernetes label keys ([prefix/]name) to label values (at most 63 letters, digits, "
               "'-', '_', '.')" if check_values else "a mapping of Kubernetes annotation keys to strings")
    if not isinstance(value, Mapping):
        raise fail(key, value, allowed)
    out: dict[str, str] = {}
    for k, v in value.items():
        if not _label_key(k):
            raise fail(f"{key}.{k}", v, allowed)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or (check_values and v and not LABEL_NAME.fullmatch(v)):
            raise fail(f"{key}.{k}", v, allowed)
        out[k] = v
    return out


def _tolerations(value: Any) -> tuple[Toleration, ...]:
    value = _plain(value) or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise fail("tolerations", value, "a list of {key, operator, value, effect, toleration_seconds}")
    out = []
    for i, item in enumerate(value):
        where = f"tolerations[{i}]"
        if not isinstance(item, Mapping):
            raise fail(where, item, "a mapping with keys " + ", ".join(TOLERATION_KEYS))
        unknown = [k for k in item if k not in TOLERATION_KEYS]
        if unknown:
            raise KFPConfigError(f"kfp: invalid hydra.launcher.{where}: unknown key {unknown[0]!r}; "
                                 f"allowed: {', '.join(TOLERATION_KEYS)}")
        key, operator, val = item.get("key"), item.get("operator"), item.get("value")
        effect, seconds = item.get("effect"), item.get("toleration_seconds")
        if operator is not None and operator not in OPERATORS:
            raise fail(f"{where}.operator", operator, ", ".join(OPERATORS))
        if effect is not None and effect not in EFFECTS:
            raise fail(f"{where}.effect", effect, ", ".join(EFFECTS) + " (or null: every effect)")
        if key is not None and not _label_key(key):
            raise fail(f"{where}.key", key, "a Kubernetes label key ([prefix/]name), or null with operator Exists")
        if key is None and operator != "Exists":
            raise fail(f"{where}.operator", operator, "Exists when key is null (a toleration of every taint)")
        if operator == "Exists" and val not in (None, ""):
            raise fail(f"{where}.value", val, "null with operator Exists")
        if val is not None and (not isinstance(val, str) or val and not LABEL_NAME.fullmatch(val)):
            raise fail(f"{where}.value", val, "a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')")
        if seconds is not None:
            if effect != "NoExecute":
                raise fail(f"{where}.toleration_seconds", seconds, "null unless effect is NoExecute")
            _whole(f"{where}.toleration_seconds", seconds, 0, "a whole number of seconds >= 0")
        out.append(Toleration(key, operator, val, effect, seconds))
    return tuple(out)


def _secrets(value: Any) -> tuple[SecretEnv, ...]:
    value = _plain(value) or []
    shape = "a list of {secret_name: <Kubernetes Secret>, secret_key_to_env: {<key in the Secret>: <ENV_VAR>}}"
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise fail("secrets", value, shape)
    out, seen = [], set()
    for i, item in enumerate(value):
        where = f"secrets[{i}]"
        if not isinstance(item, Mapping):
            raise fail(where, item, shape)
        unknown = [k for k in item if k not in SECRET_KEYS]
        if unknown:
            raise KFPConfigError(f"kfp: invalid hydra.launcher.{where}: unknown key {unknown[0]!r}; "
                                 f"allowed: {', '.join(SECRET_KEYS)}")
        name = item.get("secret_name")
        if not isinstance(name, str) or not DNS_SUBDOMAIN.fullmatch(name):
            raise fail(f"{where}.secret_name", name, "a Kubernetes Secret name (lowercase DNS-1123)")
        mapping = item.get("secret_key_to_env")
        if not isinstance(mapping, Mapping) or not mapping:
            raise fail(f"{where}.secret_key_to_env", mapping, "a non-empty mapping {<key in the Secret>: <ENV_VAR>}")
        for data_key, env in mapping.items():
            if not isinstance(data_key, str) or not SECRET_DATA_KEY.fullmatch(data_key):
                raise fail(f"{where}.secret_key_to_env", data_key, "Secret keys of letters, digits, '-', '_', '.'")
            if not isinstance(env, str) or not ENV_NAME.fullmatch(env):
                raise fail(f"{where}.secret_key_to_env.{data_key}", env, "an environment variable name")
            if env in seen:
                raise fail(f"{where}.secret_key_to_env.{data_key}", env, "each environment variable set once")
            seen.add(env)
        optional = item.get("optional", False)
        if not isinstance(optional, bool):
            raise fail(f"{where}.optional", optional, "true or false")
        out.append(SecretEnv(name, dict(mapping), optional))
    return tuple(out)


def _env(value: Any, secrets: tuple[SecretEnv, ...]) -> dict[str, str]:
    value = _plain(value) or {}
    allowed = "a mapping of environment variable names to plain (non-secret) strings"
    if not isinstance(value, Mapping):
        raise fail("env", value, allowed)
    from_secrets = {env for s in secrets for env in s.secret_key_to_env.values()}
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not ENV_NAME.fullmatch(k):
            raise fail(f"env.{k}", v, allowed)
        if k in from_secrets:
            raise fail(f"env.{k}", v, "a variable not already set from hydra.launcher.secrets")
        if isinstance(v, (int, float, bool)):
            v = str(v).lower() if isinstance(v, bool) else str(v)
        if not isinstance(v, str):
            raise fail(f"env.{k}", v, allowed)
        if v and SECRET_ENV_NAME.search(k):
            raise fail(f"env.{k}", "***", "no value for a variable named like a secret (*TOKEN*, *PASS*, "
                       "*PWD*, *SECRET*, *KEY*, *AUTH*, *CREDENTIAL*, *COOKIE*, *SESSION*): env is written in clear into the compiled pipeline and its runs; pass it "
                       f"with hydra.launcher.secrets=[{{secret_name: <Kubernetes Secret>, secret_key_to_env: "
                       f"{{<key in the Secret>: {k}}}}}]")
        out[k] = v
    return out


def ui_base(settings: LauncherSettings) -> str | None:
    """The KFP UI's base URL for links to runs and experiments (``ui_host``, else ``host``), without any
    ``user:password@`` part: links are logged, posted and sent to jobs. None unless ``backend=remote``."""
    base = settings.ui_host or settings.host
    if settings.backend != "remote" or not base:
        return None
    return without_userinfo(base).rstrip("/")


# ------------------------------------------------------------------------------------------- check
def check(raw: Mapping[str, Any]) -> LauncherSettings:
    """Validate the launcher's keyword arguments (a missing one takes :class:`KFPLauncherConf`'s default); raise
    :class:`KFPConfigError` (one line) on the first problem."""
    raw = {**_defaults(), **dict(raw)}
    backend = raw.get("backend")
    if backend not in BACKENDS:
        raise fail("backend", backend, ", ".join(BACKENDS))
    host = raw.get("host")
    compile_only = raw.get("compile_only")
    if not isinstance(compile_only, bool):
        raise fail("compile_only", compile_only, "true or false")
    if backend == "remote" and not compile_only:  # compile_only talks to no API
        if not isinstance(host, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", host):
            raise fail("host", host, "the KFP API URL (http(s)://host[:port][/path]) when backend=remote")
    elif host is not None and not isinstance(host, str):
        raise fail("host", host, "null or the KFP API URL")
    image = raw.get("image")
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        raise fail("image", image, "a container image reference, e.g. "
                   "us-docker.pkg.dev/<project>/<repo>/navitune-job:0.1.0 (see `make image`)")
    cpu_request = _quantity("cpu_request", raw.get("cpu_request"), "cpu")
    cpu_limit = _quantity("cpu_limit", raw.get("cpu_limit"), "cpu")
    memory_request = _quantity("memory_request", raw.get("memory_request"), "memory")
    memory_limit = _quantity("memory_limit", raw.get("memory_limit"), "memory")
    if cpu_request and cpu_limit and cpu_cores(cpu_request) > cpu_cores(cpu_limit):
        raise fail("cpu_request", cpu_request, f"at most cpu_limit={cpu_limit}")
    if memory_request and memory_limit and memory_bytes(memory_request) > memory_bytes(memory_limit):
        raise fail("memory_request", memory_request, f"at most memory_limit={memory_limit}")
    secrets = _secrets(raw.get("secrets"))
    pipeline_name = _opt_str("pipeline_name", raw.get("pipeline_name"),
                             "null (derived from the experiment) or lowercase letters, digits and '-'",
                             PIPELINE_NAME)
    token_env = _opt_str("auth_token_env", raw.get("auth_token_env"),
                         "null or the NAME of an environment variable holding a bearer token", ENV_NAME)
    if backend == "remote" and not compile_only and token_env and not os.environ.get(token_env):
        raise fail("auth_token_env", token_env, "an environment variable that is set (it holds the token)")
    verify_ssl = raw.get("verify_ssl")
    if not isinstance(verify_ssl, bool):
        raise fail("verify_ssl", verify_ssl, "true or false")
    cancel = raw.get("cancel_on_shutdown")
    if not isinstance(cancel, bool):
        raise fail("cancel_on_shutdown", cancel, "true or false")
    n_jobs = _whole("n_jobs", raw.get("n_jobs"), 1, "a whole number > 0")
    return LauncherSettings(
        backend=backend,
        host=host.rstrip("/") if isinstance(host, str) else None,
        namespace=_opt_str("namespace", raw.get("namespace"), "null or a Kubernetes namespace", DNS_LABEL),
        experiment=_opt_str("experiment", raw.get("experiment"), "null (the study name) or a non-empty name"),
        pipeline_name=pipeline_name,
        image=image,
        image_pull_policy=_opt_str("image_pull_policy", raw.get("image_pull_policy"),
                                   "null, " + ", ".join(PULL_POLICIES), re.compile("|".join(PULL_POLICIES))),
        service_account=_opt_str("service_account", raw.get("service_account"),
                                 "null or a Kubernetes service account name", DNS_SUBDOMAIN),
        cpu_request=cpu_request, cpu_limit=cpu_limit, memory_request=memory_request, memory_limit=memory_limit,
        node_selector=_labels("node_selector", raw.get("node_selector"), check_values=True),
        tolerations=_tolerations(raw.get("tolerations")),
        secrets=secrets,
        env=_env(raw.get("env"), secrets),
        pod_labels=_labels("pod_labels", raw.get("pod_labels"), check_values=True),
        pod_annotations=_labels("pod_annotations", raw.get("pod_annotations"), check_values=False),
        pipeline_root=_opt_str("pipeline_root", raw.get("pipeline_root"),
                               "null or a URI such as gs://<bucket>/kfp", re.compile(r"[a-z][a-z0-9+.-]*://\S+")),
        timeout_s=_positive("timeout_s", raw.get("timeout_s"), "null or seconds > 0", optional=True),
        poll_interval=float(_positive("poll_interval", raw.get("poll_interval"), "seconds > 0")),  # type: ignore[arg-type]
        n_jobs=n_jobs,
        prepare_ahead=_prepare_ahead(raw.get("prepare_ahead"), n_jobs),
        compile_only=compile_only,
        api_retries=_whole("api_retries", raw.get("api_retries"), 0, "a whole number >= 0"),
        api_backoff_s=float(_positive("api_backoff_s", raw.get("api_backoff_s"), "seconds > 0")),  # type: ignore[arg-type]
        auth_token_env=token_env,
        ssl_ca_cert=_opt_str("ssl_ca_cert", raw.get("ssl_ca_cert"), "null or the path of a CA bundle"),
        verify_ssl=verify_ssl,
        ui_host=_opt_str("ui_host", raw.get("ui_host"), "null or the KFP UI URL", re.compile(r"https?://\S+")),
        cancel_on_shutdown=cancel,
    )
