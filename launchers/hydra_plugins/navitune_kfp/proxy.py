"""The Cloud SQL Auth Proxy beside each remote job: ``proxy.mode`` = ``none`` | ``process`` | ``native``.

Why two modes: a KFP v2 job pod has no SDK sidecar API. Upstream KFP added ``initContainers`` (with
``restartPolicy: Always``, a Kubernetes *native sidecar*) to ``KubernetesExecutorConfig`` in July 2026
(kubeflow/pipelines#13651), after kfp-kubernetes 2.17.3, so ``native`` writes that platform-spec entry
directly and needs a backend that knows the field. ``process`` runs the proxy as a supervised child process
inside the job container instead, which works on any KFP v2 backend and with ``backend=local``.

Pieces (all importable without kfp; kfp/kfp-kubernetes are imported lazily where used):

- :func:`proxy_settings` reads and validates the job config's ``proxy`` node (one-line ``ValueError``).
- :func:`supervised_proxy` (mode ``process``) starts the proxy, waits for its port, yields, stops it, and
  turns a proxy death mid-run into :class:`ProxyDied` in the job's main thread.
- :func:`proxy_for_job` is what the remote job wraps its task in, for every mode.
- :func:`native_sidecar_container`, :func:`credentials_volume`, :func:`add_native_sidecar` and
  :func:`apply_proxy` patch the compiled pipeline YAML's Kubernetes platform spec (mode ``native``, and the
  credentials secret for ``process``). Secrets are referenced by name only, never by value.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

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
    name = f"proxy.{key}" if key else "proxy"
    return ValueError(f"invalid config {name}={value!r}; allowed: {allowed}")


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


# ------------------------------------------------------------------------------- mode "process"
def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _port_taken(host: str, port: int) -> bool:
    """True when something already listens there (our proxy would fail to bind and the probe would lie)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(settings: ProxySettings, *, host: str = HOST, poll_s: float = 0.05) -> None:
    """Wait until the proxy accepts TCP connections (mode ``native``: the sidecar starts beside the job, and
    the platform spec cannot carry a startup probe), or raise :class:`ProxyStartTimeout`."""
    deadline = time.monotonic() + settings.start_timeout_s
    while not _port_accepts(host, settings.port):
        if time.monotonic() > deadline:
            raise ProxyStartTimeout(
                f"Cloud SQL proxy for {settings.instance} did not accept connections on {host}:{settings.port} "
                f"within {settings.start_timeout_s:g} s")
        time.sleep(poll_s)


def _die_with_parent_hook() -> Any:
    """A ``preexec_fn`` that makes the child get SIGTERM when the job process dies (even by SIGKILL), so an
    orphaned proxy never keeps the port of the next attempt busy. Linux only (None elsewhere). ``prctl`` is
    resolved here, in the parent: the hook itself must not import or take locks between fork and exec."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm)


@dataclass
class ProxyHandle:
    """What :func:`supervised_proxy` yields: the running proxy, and a way to poll it from job code."""

    settings: ProxySettings
    pid: int
    host: str
    port: int
    command: list[str]
    _sup: "_Supervisor" = field(repr=False)

    @property
    def alive(self) -> bool:
        return self._sup.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`ProxyDied` if the proxy has exited (for jobs that run outside the main thread)."""
        if self._sup.proc.poll() is not None and self._sup.watcher is not None:
            self._sup.watcher.join(timeout=2.0)  # it is recording the death right now
        if self._sup.died is not None:
            raise self._sup.died


class _Supervisor:
    """One proxy child process: start, readiness, a watcher thread, and the stop sequence."""

    def __init__(self, settings: ProxySettings, host: str) -> None:
        self.settings, self.host = settings, host
        self.command = settings.process_command()
        self.proc: subprocess.Popen | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self.lock = threading.Lock()
        self.armed = False
        self.stopping = False
        self.died: ProxyDied | None = None
        self.signalled = False
        self.handled = threading.Event()
        self.prev_handler: Any = None
        self.installed = False
        self.threads: list[threading.Thread] = []
        self.watcher: threading.Thread | None = None
        self.group_killed = False

    # -- start
    def start(self) -> None:
        s = self.settings
        where = f"{self.host}:{s.port}"
        if _port_taken(self.host, s.port):
            raise ProxyStartError(f"cannot start Cloud SQL proxy for {s.instance}: {where} is already in use")
        try:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent_hook(),
            )
        except OSError as err:
            raise ProxyStartError(f"cannot start Cloud SQL proxy for {s.instance}: {self.command[0]!r}: "
                                  f"{err.strerror or err}") from None
        self._thread(self._pump, "proxy-output")
        deadline = time.monotonic() + s.start_timeout_s
        try:
            while not _port_accepts(self.host, s.port, timeout=0.2):
                code = self.proc.poll()
                if code is not None:
                    raise ProxyStartError(f"Cloud SQL proxy for {s.instance} exited with code {code} before "
                                          f"accepting connections on {where}{self._last_output()}")
                if time.monotonic() > deadline:
                    raise ProxyStartTimeout(f"Cloud SQL proxy for {s.instance} did not accept connections on "
                                            f"{where} within {s.start_timeout_s:g} s{self._last_output()}")
                time.sleep(0.05)
        except BaseException:
            self._terminate()
            raise
        self.watcher = self._thread(self._watch, "proxy-watcher")

    def _thread(self, target: Any, name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def _pump(self) -> None:
        """Forward the proxy's output to the job's stderr (so it is in the KFP logs) and keep a short tail."""
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            try:
                print(f"[cloud-sql-proxy] {line}", file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass

    def _last_output(self) -> str:
        time.sleep(0.05)  # let the pump read the last line of a process that just exited
        return f"; last output: {self.tail[-1][:300]}" if self.tail else ""

    # -- watch
    def _watch(self) -> None:
        """Block until the proxy exits; if the job is still running, fail it from here (see :meth:`arm`)."""
        assert self.proc is not None
        code = self.proc.wait()
        if self.stopping:
            return
        died = self._death(code)
        with self.lock:
            if self.stopping:
                return
            self.died = died
            if self.armed and self.installed:
                self.signalled = True
                # A real signal to the main thread, not _thread.interrupt_main(): it also interrupts a blocking
                # call (a socket read in PyMySQL, time.sleep) with EINTR, so the job fails within moments.
                signal.pthread_kill(threading.main_thread().ident, INTERRUPT_SIGNAL)

    def _death(self, code: int) -> ProxyDied:
        how = f" (killed by {signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() else ""
        return ProxyDied(f"Cloud SQL proxy for {self.settings.instance} exited with code {code}{how} "
                         f"while the job was running{self._last_output()}")

    def _exit_code_so_far(self) -> int | None:
        """The proxy's exit code if it has already exited (before we stop it), else None; does not reap."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # the watcher reaped it this instant
            if self.watcher is not None:
                self.watcher.join(timeout=2.0)
            return self.proc.returncode
        if info is None:
            return None
        return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.handled.set()
        if self.armed and self.died is not None:
            self.armed = False  # raise once
            raise self.died

    def arm(self) -> None:
        """From now on a proxy death raises :class:`ProxyDied` in the main thread (if we are in it)."""
        if threading.current_thread() is threading.main_thread():
            try:
                self.prev_handler = signal.signal(INTERRUPT_SIGNAL, self._on_signal)
                self.installed = True
            except (ValueError, OSError):  # e.g. an embedding that owns signals: fall back to raise-on-exit
                pass
        with self.lock:
            self.armed = True
            died = self.died
        if died is not None:
            raise died

    # -- stop
    def stop(self) -> ProxyDied | None:
        """Disarm, stop the proxy and its process group, restore the signal handler; return the death, if any."""
        with self.lock:
            self.stopping = True
            self.armed = False
        if self.died is None:
            # The job may have failed on its own first (its DB connections broke with the proxy) before the
            # watcher recorded the death: a proxy that exited before we stop it still died during the run.
            code = self._exit_code_so_far()
            if code is not None:
                self.died = self._death(code)
        if self.signalled:
            # The watcher sent a signal: let our (now inert) handler consume it before restoring the previous
            # one, which may be SIG_DFL (terminate the process).
            deadline = time.monotonic() + 2.0
            while not self.handled.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.installed and (not self.signalled or self.handled.is_set()):
            signal.signal(INTERRUPT_SIGNAL, self.prev_handler)
            self.installed = False
        self._terminate()
        return self.died

    def _terminate(self) -> None:
        proc = self.proc
        if proc is None:
            return
        with self.lock:
            self.stopping = True
        if not self.group_killed:  # once: stop() may run twice (see supervised_proxy)
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout=self.settings.stop_timeout_s)
            except subprocess.TimeoutExpired:
                pass
            # SIGKILL the whole group: the proxy itself if SIGTERM was not enough, and any children it forked
            # (socat's per-connection children), which would otherwise outlive the job. The group id stays
            # reserved while any member lives; it is not signalled again afterwards.
            self.group_killed = True
            self._signal_group(signal.SIGKILL)
        proc.wait()
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@contextlib.contextmanager
def supervised_proxy(settings: ProxySettings, *, host: str = HOST) -> Iterator[ProxyHandle]:
    """Run the proxy (mode ``process``) as a supervised child process for the duration of the block.

    Starts ``settings.process_command()`` in its own process group, waits until ``host:port`` accepts
    connections (:class:`ProxyStartError` if it exits first, :class:`ProxyStartTimeout` after
    ``start_timeout_s``), yields a :class:`ProxyHandle`, and on exit stops it (SIGTERM, then SIGKILL of the
    group after ``stop_timeout_s``). If the proxy dies while the block runs, a watcher thread interrupts the
    main thread with ``SIGUSR1`` whose handler raises :class:`ProxyDied`; whatever the block then raises (a DB
    error, a KeyboardInterrupt, or nothing because it swallowed the error), the exception leaving this context
    is that :class:`ProxyDied`, so the job fails with one clear message. Outside the main thread there is no
    interruption: the death is raised on exit, and ``handle.check()`` raises it on demand."""
    sup = _Supervisor(settings, host)
    sup.start()
    handle = ProxyHandle(settings=settings, pid=sup.proc.pid, host=host, port=settings.port,  # type: ignore[union-attr]
                         command=list(sup.command), _sup=sup)
    body_error: BaseException | None = None
    try:
        sup.arm()
        yield handle
    except BaseException as exc:  # noqa: BLE001 - decided below, after the proxy is stopped
        body_error = exc
    finally:
        # The handler raises at most once; if it fires while we get here, stop again (it is idempotent).
        while True:
            try:
                died = sup.stop()
                break
            except ProxyDied as exc:
                body_error = body_error or exc
    if died is not None:
        if body_error is died:
            raise died
        raise died from body_error
    if body_error is not None:
        raise body_error


@contextlib.contextmanager
def proxy_for_job(settings: ProxySettings | None, *, host: str = HOST) -> Iterator[ProxyHandle | None]:
    """What the remote job wraps its task in: ``process`` → :func:`supervised_proxy`; ``native`` → wait for
    the sidecar's port (Kubernetes restarts a dead sidecar itself); ``None`` (mode ``none``) → nothing."""
    if settings is None:
        yield None
    elif settings.mode == "process":
        with supervised_proxy(settings, host=host) as handle:
            yield handle
    elif settings.mode == "native":
        wait_for_port(settings, host=host)
        yield None
    else:  # pragma: no cover - proxy_settings() only returns process or native
        raise ValueError(f"invalid config proxy.mode={settings.mode!r}; allowed: {', '.join(MODES)}")


# ------------------------------------------------------------------ mode "native": platform spec
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


# --------------------------------------------------- upstream schema of the platform-spec entries
_UPSTREAM_CLASS: Any = None


def _upstream_executor_config_class() -> Any:
    """``KubernetesExecutorConfig`` as upstream defines it since kubeflow/pipelines#13651: the installed
    kfp-kubernetes descriptor plus, if it lacks them (2.17.3 does), the ``InitContainer`` message and field 19
    ``init_containers``, built in a private descriptor pool (the installed module is not touched)."""
    global _UPSTREAM_CLASS
    if _UPSTREAM_CLASS is not None:
        return _UPSTREAM_CLASS
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from kfp.kubernetes import kubernetes_executor_config_pb2 as pb

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(fdp)
    cfg_msg = next(m for m in fdp.message_type if m.name == "KubernetesExecutorConfig")
    if not any(f.name == "init_containers" for f in cfg_msg.field):
        def add(msg: Any, name: str, number: int, ftype: int, label: int = F.LABEL_OPTIONAL,
                type_name: str = "", json_name: str = "") -> Any:
            f = msg.field.add(name=name, number=number, type=ftype, label=label,
                              json_name=json_name or re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name))
            if type_name:
                f.type_name = type_name
            return f

        ic = fdp.message_type.add(name="InitContainer")
        add(ic, "name", 1, F.TYPE_STRING)
        add(ic, "image", 2, F.TYPE_STRING)
        add(ic, "command", 3, F.TYPE_STRING, F.LABEL_REPEATED)
        add(ic, "args", 4, F.TYPE_STRING, F.LABEL_REPEATED)
        env = ic.nested_type.add(name="EnvVar")
        add(env, "name", 1, F.TYPE_STRING)
        add(env, "value", 2, F.TYPE_STRING)
        add(ic, "env", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".kfp_kubernetes.InitContainer.EnvVar")
        vm = ic.nested_type.add(name="VolumeMount")
        add(vm, "volume_name", 1, F.TYPE_STRING)
        add(vm, "mount_path", 2, F.TYPE_STRING)
        add(ic, "volume_mounts", 6, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".kfp_kubernetes.InitContainer.VolumeMount")
        rp = add(ic, "restart_policy", 7, F.TYPE_STRING)
        rp.proto3_optional = True
        ic.oneof_decl.add(name="_restart_policy")
        rp.oneof_index = 0
        rr = ic.nested_type.add(name="ResourceRequirements")
        for i, part in enumerate(("requests", "limits"), start=1):
            entry = rr.nested_type.add(name=f"{part.capitalize()}Entry")
            entry.options.map_entry = True
            add(entry, "key", 1, F.TYPE_STRING)
            add(entry, "value", 2, F.TYPE_STRING)
            add(rr, part, i, F.TYPE_MESSAGE, F.LABEL_REPEATED,
                f".kfp_kubernetes.InitContainer.ResourceRequirements.{part.capitalize()}Entry")
        add(ic, "resources", 8, F.TYPE_MESSAGE, type_name=".kfp_kubernetes.InitContainer.ResourceRequirements")
        add(cfg_msg, "init_containers", 19, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".kfp_kubernetes.InitContainer")

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add_file(fd: Any) -> None:
        if fd.name in added:
            return
        for dep in fd.dependencies:
            add_file(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        pool.Add(proto)
        added.add(fd.name)

    for dep in pb.DESCRIPTOR.dependencies:
        add_file(dep)
    pool.Add(fdp)
    _UPSTREAM_CLASS = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("kfp_kubernetes.KubernetesExecutorConfig"))
    return _UPSTREAM_CLASS


def check_executor_config(executor_config: Mapping[str, Any]) -> None:
    """Parse one executor's Kubernetes config strictly against upstream's schema (unknown fields fail, as on
    the backend), so a malformed sidecar entry fails at compile time, not in the cluster. A no-op without
    kfp-kubernetes installed."""
    try:
        cls = _upstream_executor_config_class()
    except ImportError:
        return
    from google.protobuf import json_format

    try:
        msg = json_format.ParseDict(dict(executor_config), cls())
    except json_format.ParseError as err:
        raise ValueError(f"the Kubernetes executor config does not match KubernetesExecutorConfig: {err}") from None
    for init in getattr(msg, "init_containers", []):
        if init.HasField("restart_policy") and init.restart_policy != "Always":
            raise ValueError(f"init container {init.name!r}: restartPolicy must be 'Always' if set")
