"""The executing half of the KFP stand-in: a created run is run on this machine as the backend would run it.

Why: the scripted stand-in (``kfp_api_server.FakeKFP``) shows that the launcher speaks the API right, not that a
compiled pipeline, as submitted, runs the job. Here each run of a one-task pipeline becomes a "pod" of local
processes built from the pipeline spec in the request, the way KFP's driver and launcher build the pod:

* the task's container ``command`` and ``args``, ``{{$}}`` (the executor input: the task's parameter values
  and its output paths) and the other ``{{$...}}`` placeholders substituted; the task's constant inputs with
  the run-level placeholders resolved (``{{$.pipeline_job_uuid}}``, the create and schedule times, ...);
* the container's ``env``; ``secretAsEnv`` / ``secretAsVolume`` of the Kubernetes platform spec, from a local
  secret store (``{secret name: {key: value}}``); a missing secret fails the pod as Kubernetes does;
* ``initContainers``: plain ones run to completion first; ``restartPolicy: Always`` ones (native sidecars) are
  started before the task, restarted when they die (with a growing pause, as the kubelet does), and stopped
  after it; ``activeDeadlineSeconds`` kills the pod; the task's ``retryPolicy`` retries a failed pod;
* run states as the API reports them: PENDING until the pod starts, RUNNING, SUCCEEDED, FAILED with the pod's
  message (its termination reason and its last log line, as ``FallbackToLogsOnError`` would), CANCELING and
  CANCELED after terminate.

Processes stand in for containers (``kfp_process``): an image is an entry of a ``kfp_images.Registry`` (the
job image: this checkout and this interpreter; the Cloud SQL proxy image: ``socat`` to a local database). An
image that is not there fails the pod like an image pull error. By default all pods share this machine's
network, so two pods whose proxies listen on one port collide; with ``pod_network=True`` each pod gets its own
network namespace (``kfp_podnet``) and reaches only the machine's ports it is given (``host_ports``, and the
API's own), as a pod reaches cluster services. Faults a test injects: :meth:`Executor.evict_next`,
:meth:`Executor.fail_pulls`, :meth:`Executor.kill_sidecar_next`, :meth:`Executor.kill` (a run's process tree,
now). Every wait has a deadline; :meth:`Executor.shutdown` kills and reaps every process group it started.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .kfp_images import PROXY_IMAGE, Container, Image, Registry, job_image, proxy_image
from .kfp_podnet import PodNetwork, pod_network_available
from .kfp_process import WAIT_SLICE_S, Flag, PodFailed, Proc, last_line, wait_any

__all__ = ["PROXY_IMAGE", "Container", "Executor", "Image", "PodFailed", "Registry", "job_image",
           "pod_network_available", "proxy_image"]

PLACEHOLDER = re.compile(r"\{\{\$(?:\.[^{}]*)?\}\}")
STOP_GRACE_S = 5.0  # terminationGracePeriodSeconds, scaled down
RESTART_BACKOFF_S = (0.1, 2.0)  # a dead sidecar's first restart pause and the cap (the kubelet: 10 s, 5 min)


def rfc3339(when: dt.datetime) -> str:
    """The API's time format (``created_at`` and friends)."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def placeholder_time(when: dt.datetime) -> str:
    """The create/schedule-time placeholders' format (the backend writes RFC 3339 in whole seconds, UTC)."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------- faults
@dataclass
class _Fault:
    count: int
    after_s: float
    match: re.Pattern | None
    message: str = ""

    def takes(self, run_name: str) -> bool:
        return self.count > 0 and (self.match is None or bool(self.match.search(run_name)))


# ----------------------------------------------------------------------------------------------- pods
class _Sidecar:
    """A native sidecar: restarted whenever it exits while the pod runs, with a growing pause."""

    def __init__(self, pod: "Pod", c: Container, image: Image) -> None:
        self.pod, self.container, self.image = pod, c, image
        self.proc: Proc | None = None
        self.restarts = 0
        self.stopping = Flag()
        self.lock = threading.Lock()
        self._start()
        self.thread = threading.Thread(target=self._watch, name=f"sidecar-{c.name}", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        c = Container(self.container.name, list(self.container.argv), self.container.cwd, dict(self.container.env))
        c = self.pod.enter(self.image.prepare(c, self.pod))
        with self.lock:
            self.proc = Proc(c, self.pod.dir / f"{c.name}.log")

    def _watch(self) -> None:
        pause = RESTART_BACKOFF_S[0]
        while not self.stopping.is_set():
            proc = self.proc
            if proc is not None:
                while proc.alive() and not self.stopping.is_set():  # sleeps until it exits or the pod stops
                    wait_any([proc.exited, self.stopping], WAIT_SLICE_S)
                if self.stopping.is_set():
                    return
                proc.stop(0)  # reap it and any children left in its group
                self.pod.event(f"sidecar {self.container.name} exited with code {proc.popen.returncode}; restarting")
            if self.stopping.wait(pause):
                return
            pause = min(pause * 2, RESTART_BACKOFF_S[1])
            self.restarts += 1
            with self.pod.executor._lock:
                self.pod.executor.fired["restart"] += 1
            try:
                self._start()
            except PodFailed as err:  # CrashLoopBackOff: try again after a longer pause
                with self.lock:
                    self.proc = None
                self.pod.event(f"sidecar {self.container.name}: {err}")

    def stop(self, grace_s: float) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        with self.lock:
            if self.proc is not None:
                self.proc.stop(grace_s)


class Pod:
    """One attempt of a run's task: a directory standing in for the pod's file system, its containers."""

    def __init__(self, executor: "Executor", run: "_Run", attempt: int) -> None:
        self.executor, self.run, self.attempt = executor, run, attempt
        self.name = f"{run.run_id}-{run.task}-{attempt}"
        self.shared = executor.root
        self.dir = executor.root / run.run_id / f"attempt-{attempt}"
        self.fs = self.dir / "fs"  # absolute paths of the pod (secret volumes, outputs) land under here
        (self.fs / "tmp").mkdir(parents=True, exist_ok=True)
        self.main: Proc | None = None
        self.sidecars: list[_Sidecar] = []
        self.network: PodNetwork | None = None
        self.killed: PodFailed | None = None
        self.lock = threading.Lock()

    def path(self, pod_path: str) -> Path:
        """Where an absolute path of the pod is on this machine."""
        return self.fs / pod_path.lstrip("/")

    def event(self, text: str) -> None:
        self.executor.event(self.run.run_id, f"{self.name}: {text}")

    def host_address(self, port: int) -> str:
        """How a process of this pod reaches ``127.0.0.1:port`` of this machine (a socat address)."""
        if self.network is None:
            return f"TCP:127.0.0.1:{port}"
        return f"UNIX-CONNECT:{self.executor.bridge(port)}"

    def enter(self, c: Container) -> Container:
        """The container, run inside the pod's network namespace (if it has one)."""
        if self.network is not None:
            c.argv = self.network.enter(c.argv)
        return c

    def kill(self, failure: PodFailed) -> bool:
        """Kill every container now (eviction, a test's kill hook); False when no container is running."""
        with self.lock:
            if self.main is None or not self.main.alive():
                return False
            self.killed = self.killed or failure
            procs = [self.main] + [s.proc for s in self.sidecars if s.proc is not None]
        for s in self.sidecars:
            s.stopping.set()
        for p in procs:
            p.signal_group(signal.SIGKILL)
        return True

    def processes(self) -> list[int]:
        with self.lock:
            procs = [self.main] + [s.proc for s in self.sidecars] + (self.network.procs if self.network else [])
        return [p.popen.pid for p in procs if p is not None and p.alive()]


@dataclass
class _Run:
    run_id: str
    name: str
    task: str
    executor_label: str
    container: dict
    k8s: dict
    retry: dict
    params: dict[str, Any]
    created_at: dt.datetime
    scheduled_at: dt.datetime
    pipeline_root: str
    outputs: list[str] = field(default_factory=list)
    cancel: Flag = field(default_factory=Flag)
    pod: Pod | None = None
    thread: threading.Thread | None = None
    output: Any = None


def _duration(text: str | None, default: float = 0.0) -> float:
    """A proto Duration in JSON (``"3s"``, ``"0.5s"``) in seconds."""
    if not text:
        return default
    return float(str(text).rstrip("s"))


class Executor:
    """Runs the runs a :class:`~tools.standins.kfp_api_server.FakeKFP` creates (``FakeKFP(executor=...)``).

    ``registry``: the images there are; ``secrets``: the namespace's Secrets, ``{name: {key: value}}``;
    ``root``: where pods keep their files and logs; ``retry_backoff_scale``: multiplies the retry policy's
    pauses (1.0: as written); ``pending_s``: how long a run stays PENDING before its pod starts."""

    def __init__(self, registry: Registry, secrets: Mapping[str, Mapping[str, str]] | None = None,
                 root: Path | None = None, retry_backoff_scale: float = 1.0, pending_s: float = 0.05,
                 pod_network: bool = False, host_ports: Iterable[int] = ()) -> None:
        self.registry = registry
        self.secrets = {k: dict(v) for k, v in (secrets or {}).items()}
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="kfp-standin-pods-"))
        self.retry_backoff_scale = retry_backoff_scale
        self.pending_s = pending_s
        self.pod_network = pod_network
        self.host_ports = set(host_ports)
        self._bridges: dict[int, tuple[Path, Proc]] = {}
        self.runs: dict[str, _Run] = {}
        self.events: list[tuple[float, str, str]] = []  # (monotonic, run id, text)
        self.fired: dict[str, int] = {"evict": 0, "pull": 0, "sidecar": 0, "kill": 0, "restart": 0}
        self._evictions: list[_Fault] = []
        self._pulls: dict[str, int] = {}
        self._sidecar_kills: list[_Fault] = []
        self._lock = threading.Lock()
        self._closing = Flag()
        self._update: Callable[[str, Callable[[dict], None]], None] = lambda run_id, fn: None

    # -------------------------------------------------------------------------------- wiring
    def attach(self, update: Callable[[str, Callable[[dict], None]], None], api_port: int | None = None) -> None:
        """``update(run_id, fn)``: apply ``fn`` to the API's record of the run under the server's lock;
        ``api_port``: the API's port, which pods reach (a driver pipeline submits runs from its pod)."""
        self._update = update
        if api_port is not None:
            self.host_ports.add(api_port)

    def bridge(self, port: int) -> Path:
        """The unix socket that reaches ``127.0.0.1:port`` of this machine (one socat per port, started once):
        how a process in a pod's own network namespace gets out."""
        with self._lock:
            found = self._bridges.get(port)
            if found is not None and found[1].alive():
                return found[0]
            sock = self.root / "net" / f"{port}.sock"
            sock.parent.mkdir(parents=True, exist_ok=True)
            c = Container(f"bridge-{port}", ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early",
                                             f"TCP:127.0.0.1:{port}"], self.root, {"PATH": os.environ.get("PATH", "")})
            proc = Proc(c, sock.parent / f"{port}.log")
            self._bridges[port] = (sock, proc)
            deadline = time.monotonic() + 10
            while not sock.exists():
                if not proc.alive() or time.monotonic() > deadline:
                    raise PodFailed("FailedCreatePodSandBox", f"cannot bridge port {port}: "
                                    f"{last_line(proc.log) or 'timed out'}", retryable=False)
                time.sleep(0.01)
            return sock

    def event(self, run_id: str, text: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), run_id, text))

    # -------------------------------------------------------------------------------- faults
    def evict_next(self, count: int = 1, after_s: float = 1.0, match: str | None = None,
                   message: str = "The node was low on resource: memory.") -> None:
        """The next ``count`` task containers (of runs whose name matches ``match``) are evicted ``after_s``
        seconds after they start, if still running: the pod's processes are killed and the pod fails with
        reason Evicted (retried if the task has a retry policy)."""
        self._evictions.append(_Fault(count, after_s, re.compile(match) if match else None, message))

    def fail_pulls(self, image: str, count: int = 1) -> None:
        """The next ``count`` pulls of ``image`` fail (a registry hiccup): the pod fails with ErrImagePull."""
        self._pulls[image] = self._pulls.get(image, 0) + count

    def kill_sidecar_next(self, count: int = 1, after_s: float = 1.0, match: str | None = None) -> None:
        """The sidecars of the next ``count`` pods die (SIGKILL of their process group) ``after_s`` seconds
        after the task starts; the pod restarts them."""
        self._sidecar_kills.append(_Fault(count, after_s, re.compile(match) if match else None))

    def kill(self, run_id: str, message: str = "the pod's processes were killed") -> bool:
        """Kill the run's current pod (every container's process tree) now, as a node lost under it would;
        the pod fails (reason Error) and the retry policy decides what follows. False if nothing ran."""
        run = self.runs.get(run_id)
        pod = run.pod if run is not None else None
        if pod is None or not pod.kill(PodFailed("Error", message)):
            return False
        with self._lock:
            self.fired["kill"] += 1
        return True

    def processes(self, run_id: str) -> list[int]:
        """Live process ids of the run's current pod (task and sidecars)."""
        run = self.runs.get(run_id)
        return run.pod.processes() if run is not None and run.pod is not None else []

    # ------------------------------------------------------------------------------- runs
    def start(self, run: dict) -> None:
        """Execute a run the API has just created (its record: ``pipeline_spec``, ``runtime_config``, times)."""
        spec = run.get("pipeline_spec") or {}
        pipeline = spec.get("pipeline_spec", spec)
        platform = spec.get("platform_spec", {}) if "pipeline_spec" in spec else {}
        try:
            r = self._plan(run, pipeline, platform)
        except (KeyError, ValueError, TypeError) as err:
            self._finish(run["run_id"], "FAILED", f"the pipeline spec cannot be run: {type(err).__name__}: {err}")
            return
        with self._lock:
            self.runs[r.run_id] = r
        r.thread = threading.Thread(target=self._execute, args=(r,), name=f"run-{r.run_id}", daemon=True)
        r.thread.start()

    def terminate(self, run_id: str) -> None:
        """The API's terminate: the run is CANCELING until its pod is gone, then CANCELED."""
        run = self.runs.get(run_id)
        if run is not None:
            run.cancel.set()

    def _plan(self, run: dict, pipeline: dict, platform: dict) -> _Run:
        tasks = pipeline["root"]["dag"]["tasks"]
        if len(tasks) != 1:
            raise ValueError(f"the stand-in runs one-task pipelines; this one has {len(tasks)} tasks")
        (task_name, task), = tasks.items()
        component = pipeline["components"][task["componentRef"]["name"]]
        label = component["executorLabel"]
        container = pipeline["deploymentSpec"]["executors"][label]["container"]
        k8s = (platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
               .get("executors", {}).get(label, {}))
        created = parse_time(run["created_at"])
        scheduled = parse_time(run["scheduled_at"]) if run.get("scheduled_at") else created
        r = _Run(run_id=run["run_id"], name=run.get("display_name", ""), task=task_name, executor_label=label,
                 container=container, k8s=k8s, retry=task.get("retryPolicy") or {}, params={},
                 created_at=created, scheduled_at=scheduled,
                 pipeline_root=(run.get("runtime_config") or {}).get("pipeline_root") or "minio://mlpipeline/v2/artifacts")
        r.params = self._inputs(r, run, pipeline, task, component)
        r.outputs = list(component.get("outputDefinitions", {}).get("parameters", {}))
        return r

    def _resolve(self, text: str, r: _Run, task_id: str = "") -> str:
        """The run-level placeholders the driver resolves in a task's constant inputs."""
        values = {
            "{{$.pipeline_job_uuid}}": r.run_id,
            "{{$.pipeline_job_name}}": r.name,
            "{{$.pipeline_job_resource_name}}": r.run_id,
            "{{$.pipeline_task_name}}": r.task,
            "{{$.pipeline_task_uuid}}": task_id or f"{r.run_id}-{r.task}",
            "{{$.pipeline_job_create_time_utc}}": placeholder_time(r.created_at),
            "{{$.pipeline_job_schedule_time_utc}}": placeholder_time(r.scheduled_at),
            "{{$.pipeline_root}}": r.pipeline_root,
        }
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    def _inputs(self, r: _Run, run: dict, pipeline: dict, task: dict, component: dict) -> dict[str, Any]:
        given = (run.get("runtime_config") or {}).get("parameters") or {}
        root_defs = pipeline["root"].get("inputDefinitions", {}).get("parameters", {})
        out: dict[str, Any] = {}
        for name, value in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                key = value["componentInputParameter"]
                if key in given:
                    out[name] = given[key]
                elif "defaultValue" in root_defs.get(key, {}):
                    out[name] = root_defs[key]["defaultValue"]
                else:
                    raise ValueError(f"the run has no value for the pipeline parameter {key!r}")
            elif "runtimeValue" in value:
                constant = value["runtimeValue"]["constant"]
                out[name] = self._resolve(constant, r) if isinstance(constant, str) else constant
            else:
                raise ValueError(f"task input {name}: only pipeline parameters and constants are supported")
        for name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name not in out and "defaultValue" in definition:
                out[name] = definition["defaultValue"]
        return out

    # -------------------------------------------------------------------------- one run
    def _execute(self, r: _Run) -> None:
        max_retries = int(self.retry_count(r))
        backoff = _duration(r.retry.get("backoffDuration")) * self.retry_backoff_scale
        factor = float(r.retry.get("backoffFactor") or 2.0)
        cap = _duration(r.retry.get("backoffMaxDuration"), 3600.0) * self.retry_backoff_scale
        attempt = 0
        try:
            if r.cancel.wait(self.pending_s):
                return self._finish(r.run_id, "CANCELED", None)
            while True:
                try:
                    self._attempt(r, attempt)
                    return self._finish(r.run_id, "SUCCEEDED", None, output=r.output)
                except PodFailed as failure:
                    if r.cancel.is_set() or self._closing.is_set():
                        return self._finish(r.run_id, "CANCELED", None)
                    self.event(r.run_id, f"attempt {attempt} failed: {failure}")
                    if not failure.retryable or attempt >= max_retries:
                        return self._finish(r.run_id, "FAILED", str(failure))
                    pause = min(backoff * factor ** attempt, cap)
                    attempt += 1
                    if r.cancel.wait(pause):
                        return self._finish(r.run_id, "CANCELED", None)
        except Exception as err:  # noqa: BLE001 - a bug here must end the run, not hang the sweep
            self._finish(r.run_id, "FAILED", f"stand-in error: {type(err).__name__}: {err}")

    @staticmethod
    def retry_count(r: _Run) -> int:
        return int(r.retry.get("maxRetryCount") or 0)

    def _pull(self, image: str) -> Image:
        with self._lock:
            if self._pulls.get(image, 0) > 0:
                self._pulls[image] -= 1
                self.fired["pull"] += 1
                raise PodFailed("ErrImagePull", f'Failed to pull image "{image}": the registry answered 503 '
                                "(injected fault)")
        found = self.registry.get(image)
        if found is None:
            raise PodFailed("ErrImagePull", f'Failed to pull image "{image}": not found in the stand-in\'s '
                            "registry", retryable=False)
        return found

    def _secret_env(self, pod: Pod, k8s: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in k8s.get("secretAsEnv", []):
            name = entry.get("secretName") or entry["secretNameParameter"]["runtimeValue"]["constant"]
            data = self.secrets.get(name)
            for pair in entry.get("keyToEnv", []):
                if data is None or pair["secretKey"] not in data:
                    if entry.get("optional"):
                        continue
                    what = f'secret "{name}" not found' if data is None else \
                        f'couldn\'t find key {pair["secretKey"]} in Secret {name}'
                    raise PodFailed("CreateContainerConfigError", what, retryable=False)
                env[pair["envVar"]] = data[pair["secretKey"]]
        for entry in k8s.get("secretAsVolume", []):
            name = entry.get("secretName") or entry["secretNameParameter"]["runtimeValue"]["constant"]
            data = self.secrets.get(name)
            if data is None:
                if entry.get("optional"):
                    continue
                raise PodFailed("FailedMount", f'MountVolume.SetUp failed for volume "{name}": secret "{name}" '
                                "not found", retryable=False)
            target = pod.path(entry["mountPath"])
            target.mkdir(parents=True, exist_ok=True)
            for key, value in data.items():
                (target / key).write_text(value)
                (target / key).chmod(0o400)
        return env

    def _container(self, pod: Pod, spec: dict, env: dict[str, str]) -> Container:
        argv = [*spec.get("command", []), *spec.get("args", [])]
        c_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(pod.fs / "tmp"), "TMPDIR": str(pod.fs / "tmp"),
                 "LANG": "C.UTF-8", "KFP_POD_NAME": pod.name, "KFP_POD_UID": str(uuid.uuid4())}
        for item in spec.get("env", []):
            c_env[item["name"]] = item.get("value", "")
        c_env.update(env)
        return Container(spec.get("name", "main"), argv, pod.fs, c_env)

    def _executor_input(self, pod: Pod, r: _Run) -> dict:
        comp_outputs: dict[str, Any] = {}
        outdir = pod.path("/tmp/kfp/outputs")
        outdir.mkdir(parents=True, exist_ok=True)
        for name in r.outputs:
            comp_outputs[name] = {"outputFile": str(outdir / name)}
        # protojson (the backend's) writes a whole number value without a fraction: 3306, not 3306.0
        values = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in r.params.items()}
        return {"inputs": {"parameterValues": values},
                "outputs": {"parameters": comp_outputs, "outputFile": str(outdir / "executor_output.json")}}

    def _substitute(self, argv: list[str], r: _Run, executor_input: dict) -> list[str]:
        def one(m: re.Match) -> str:
            token = m.group(0)
            if token == "{{$}}":
                return json.dumps(executor_input)
            if token == "{{$.outputs.output_file}}":
                return executor_input["outputs"]["outputFile"]
            pm = re.fullmatch(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", token)
            if pm:
                value = executor_input["inputs"]["parameterValues"][pm.group(1)]
                return value if isinstance(value, str) else json.dumps(value)
            om = re.fullmatch(r"\{\{\$\.outputs\.parameters\['([^']+)'\]\.output_file\}\}", token)
            if om:
                return executor_input["outputs"]["parameters"][om.group(1)]["outputFile"]
            resolved = self._resolve(token, r)
            if resolved == token:
                raise ValueError(f"unsupported placeholder {token}")
            return resolved

        return [PLACEHOLDER.sub(one, arg) for arg in argv]

    def _attempt(self, r: _Run, attempt: int) -> None:
        pod = Pod(self, r, attempt)
        r.pod = pod
        try:
            self._run_pod(r, pod)
        finally:
            self._stop_pod(pod)

    def _run_pod(self, r: _Run, pod: Pod) -> None:
        k8s = r.k8s
        inits = k8s.get("initContainers", [])
        images = {c["image"] for c in inits} | {r.container["image"]}
        pulled = {name: self._pull(name) for name in sorted(images, key=lambda n: n != r.container["image"])}
        secret_env = self._secret_env(pod, k8s)
        deadline = None
        if k8s.get("activeDeadlineSeconds"):
            deadline = time.monotonic() + float(k8s["activeDeadlineSeconds"])
        if self.pod_network:
            network = PodNetwork(pod, sorted(self.host_ports), self.bridge)
            with pod.lock:
                pod.network = network
        self._set_state(r.run_id, "RUNNING")
        pod.event("started")
        for spec in inits:
            c = self._container(pod, spec, {})
            c.argv = [*spec.get("command", []), *spec.get("args", [])]
            if spec.get("restartPolicy") == "Always":
                with pod.lock:
                    pod.sidecars.append(_Sidecar(pod, c, pulled[spec["image"]]))
                continue
            proc = Proc(pod.enter(pulled[spec["image"]].prepare(c, pod)), pod.dir / f"{c.name}.log")
            code = self._wait(proc, r, pod, deadline)
            if code != 0:
                raise PodFailed("Init:Error", f"init container {c.name} exited with code {code}: "
                                f"{last_line(proc.log)}")
        executor_input = self._executor_input(pod, r)
        c = self._container(pod, dict(r.container, name=r.task), secret_env)
        c.argv = self._substitute(c.argv, r, executor_input)
        image = pulled[r.container["image"]]
        c.env = {**image.env, **c.env}
        c = pod.enter(image.prepare(c, pod))
        if r.cancel.is_set() or self._closing.is_set():
            raise PodFailed("Canceled", "terminated")
        with pod.lock:
            pod.main = Proc(c, pod.dir / "main.log")
        self._arm_faults(r, pod)
        code = self._wait(pod.main, r, pod, deadline)
        if pod.killed is not None:
            raise pod.killed
        if code != 0:
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            raise PodFailed("Error", f"{last_line(pod.main.log) or 'no output'} ({how})")
        r.output = _outputs(executor_input)

    def _wait(self, proc: Proc, r: _Run, pod: Pod, deadline: float | None) -> int:
        """The container's exit code; sleeps until it exits, the run is canceled or the pod's deadline comes."""
        while True:
            if proc.exited.is_set():
                return proc.popen.returncode
            if r.cancel.is_set() or self._closing.is_set():
                raise PodFailed("Canceled", "terminated")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                limit = r.k8s.get("activeDeadlineSeconds")
                failure = PodFailed("DeadlineExceeded", f"Pod was active on the node longer than the specified "
                                    f"deadline ({limit} s)")
                if not pod.kill(failure):  # still in an init container: kill that one
                    proc.signal_group(signal.SIGKILL)
                proc.wait(10)
                raise pod.killed or failure
            left = WAIT_SLICE_S if deadline is None else min(deadline - now, WAIT_SLICE_S)
            wait_any([proc.exited, r.cancel, self._closing], left)

    def _arm_faults(self, r: _Run, pod: Pod) -> None:
        with self._lock:
            evict = next((f for f in self._evictions if f.takes(r.name)), None)
            if evict is not None:
                evict.count -= 1
            kill = next((f for f in self._sidecar_kills if f.takes(r.name)), None) if pod.sidecars else None
            if kill is not None:
                kill.count -= 1
        if evict is not None:
            threading.Thread(target=self._evict_later, args=(pod, evict), daemon=True).start()
        if kill is not None:
            threading.Thread(target=self._kill_sidecars_later, args=(pod, kill), daemon=True).start()

    def _evict_later(self, pod: Pod, fault: _Fault) -> None:
        if self._closing.wait(fault.after_s):
            return
        if pod.kill(PodFailed("Evicted", f"Pod was evicted: {fault.message}")):
            with self._lock:
                self.fired["evict"] += 1
            pod.event("evicted")
        else:
            with self._lock:
                fault.count += 1  # it had ended already: the fault waits for the next pod

    def _kill_sidecars_later(self, pod: Pod, fault: _Fault) -> None:
        if self._closing.wait(fault.after_s):
            return
        with pod.lock:
            running = pod.main is not None and pod.main.alive()
            procs = [s.proc for s in pod.sidecars if s.proc is not None] if running else []
        for p in procs:
            p.signal_group(signal.SIGKILL)
        with self._lock:
            if procs:
                self.fired["sidecar"] += 1
            else:
                fault.count += 1
        if procs:
            pod.event("sidecars killed")

    def _stop_pod(self, pod: Pod) -> None:
        with pod.lock:
            main, sidecars = pod.main, list(pod.sidecars)
        if main is not None:
            main.stop(STOP_GRACE_S)
        for s in sidecars:  # after the task, as the kubelet stops native sidecars
            s.stop(STOP_GRACE_S)
        if pod.network is not None:
            pod.network.stop()

    # -------------------------------------------------------------------------- API state
    def _set_state(self, run_id: str, state: str) -> None:
        def fn(run: dict) -> None:
            if run["state"] in ("CANCELING",) or run["state"] == state:
                return
            run["state"] = state
            run.setdefault("state_history", []).append({"update_time": rfc3339(dt.datetime.now(dt.timezone.utc)),
                                                        "state": state})
        self._update(run_id, fn)

    def _finish(self, run_id: str, state: str, message: str | None, output: Any = None) -> None:
        run = self.runs.get(run_id)
        task = run.task if run is not None else "task"
        pod_name = run.pod.name if run is not None and run.pod is not None else ""

        def fn(record: dict) -> None:
            now = rfc3339(dt.datetime.now(dt.timezone.utc))
            record["state"] = state
            record["finished_at"] = now
            record.setdefault("state_history", []).append({"update_time": now, "state": state})
            detail: dict[str, Any] = {"display_name": task, "state": state, "end_time": now, "pod_name": pod_name}
            if message is not None:
                record["error"] = {"code": 2, "message": message}
                detail["error"] = {"code": 2, "message": message}
            record["run_details"] = {"task_details": [detail]}

        self.event(run_id, state + (f": {message}" if message else ""))
        self._update(run_id, fn)

    def info(self, run_id: str) -> dict[str, Any]:
        """What the API does not show: attempts made, sidecar restarts of the last pod, the task's output."""
        r = self.runs[run_id]
        pod = r.pod
        return {"attempts": pod.attempt + 1 if pod else 0, "output": r.output,
                "sidecar_restarts": sum(s.restarts for s in pod.sidecars) if pod else 0,
                "pod_dir": pod.dir if pod else None}

    # ----------------------------------------------------------------------------- shutdown
    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no run is executing; False at the deadline."""
        deadline = time.monotonic() + timeout_s
        for r in list(self.runs.values()):
            if r.thread is not None:
                r.thread.join(max(0.0, deadline - time.monotonic()))
                if r.thread.is_alive():
                    return False
        return True

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every run (its pods' process groups killed and reaped), then forget the pods' files."""
        self._closing.set()
        for r in list(self.runs.values()):
            r.cancel.set()
        self.wait_idle(timeout_s)
        for r in list(self.runs.values()):  # a run thread that missed the deadline: kill what it left
            if r.pod is not None:
                self._stop_pod(r.pod)
        with self._lock:
            bridges, self._bridges = list(self._bridges.values()), {}
        for _, proc in bridges:
            proc.stop(0)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _outputs(executor_input: dict) -> dict[str, Any]:
    """The task's output parameters: from the executor output file (what kfp's executor writes), else from
    each parameter's output file."""
    out: dict[str, Any] = {}
    summary = Path(executor_input["outputs"]["outputFile"])
    if summary.is_file():
        out.update(json.loads(summary.read_text() or "{}").get("parameterValues", {}))
    for name, where in executor_input["outputs"]["parameters"].items():
        path = Path(where["outputFile"])
        if name not in out and path.is_file():
            out[name] = path.read_text()
    return out
