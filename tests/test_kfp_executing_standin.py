"""The executing KFP stand-in (``tools/standins/kfp_executor.py`` behind ``kfp_api_server.FakeKFP``).

Two layers:

- the stand-in itself, with small pipelines compiled by kfp's own compiler and read through the real
  ``kfp.Client``: parameters and run-level placeholders (run id, create and schedule time), env, secrets as env
  and as files, a native sidecar (socat) started before the task, restarted when it dies and stopped after,
  ``activeDeadlineSeconds``, the retry policy, terminate, a missing secret, an image that is not there;
- real sweeps: ``hydra/launcher=kfp hydra.launcher.backend=remote`` against it, the study in MariaDB, the job
  run by the stand-in from the compiled pipeline (the job image is this checkout), in both proxy modes (two jobs
  in flight, each pod in its own network namespace so both proxies listen on one port) and with each injected
  fault (eviction, image pull failure, a dying sidecar, API 5xx, a run's processes killed); every sweep ends
  with exactly ``n_trials`` finished trials and no run submitted twice.

Without socat, MariaDB or user namespaces (``unshare --user --net``) the tests that need them skip locally and fail
on CI (``CI=true``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tools.standins.kfp_api_server import FakeKFP
from tools.standins.kfp_executor import (
    PROXY_IMAGE, Executor, Registry, job_image, pod_network_available, proxy_image,
)
from tests.fixtures.mariadb import MariaDB
from tests.fixtures.services import free_port, unavailable, wait_until

ROOT = Path(__file__).resolve().parent.parent
JOB_IMAGE = "navitune-job:standin"
INSTANCE = "navitune-test:asia-northeast1:studies"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED"}


@pytest.fixture(scope="session")
def pod_network() -> bool:
    """Pods with their own network namespace (so two pods' proxies can listen on one port)."""
    if not pod_network_available():
        unavailable("pod networks of the KFP stand-in", "unshare --user --map-root-user --net is not permitted")
    return True


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------- small compiled pipelines
PIPELINES = '''
from kfp import dsl, kubernetes

IMAGE = "navitune-job:standin"


@dsl.component(base_image=IMAGE, install_kfp_package=False, packages_to_install=[])
def show(x: str, run_id: str, created: str, scheduled: str, sleep_s: float = 0.0, fail: str = "") -> str:
    import json, os, time
    time.sleep(sleep_s)
    if fail:
        raise RuntimeError(fail)
    return json.dumps({"x": x, "run_id": run_id, "created": created, "scheduled": scheduled,
                       "pw": os.environ.get("PW"), "plain": os.environ.get("PLAIN"),
                       "cwd": os.getcwd()})


@dsl.component(base_image=IMAGE, install_kfp_package=False, packages_to_install=[])
def through_proxy(port: int, sleep_s: float, out: str) -> str:
    """Wait for the sidecar's port (Kubernetes starts the task once the sidecar's process has started, not once
    it listens: the real job waits too), then talk through it for a while."""
    import socket, time
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    end = time.monotonic() + sleep_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"ping")
                seen.append(s.recv(4).decode())
        except OSError as err:
            seen.append(type(err).__name__ + ":" + str(err).replace(" ", "_"))
        time.sleep(0.05)
    open(out, "w").write(" ".join(seen))
    return seen[-1]


def _show(retries: int = 0, deadline: int = 0, sleep_s: float = 0.0):
    @dsl.pipeline(name="show")
    def pipeline(x: str = "default", fail: str = ""):
        task = show(x=x, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, created=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
                    scheduled=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER, sleep_s=sleep_s, fail=fail)
        task.set_env_variable("PLAIN", "plain-value")
        kubernetes.use_secret_as_env(task, secret_name="app-db", secret_key_to_env={"password": "PW"})
        kubernetes.use_secret_as_volume(task, secret_name="app-key", mount_path="/var/secrets/app")
        if retries:
            task.set_retry(num_retries=retries, backoff_duration="1s", backoff_factor=2.0)
        if deadline:
            kubernetes.set_timeout(task, deadline)
    return pipeline


def _proxied(port: int, sleep_s: float, out: str):
    @dsl.pipeline(name="proxied")
    def pipeline():
        through_proxy(port=port, sleep_s=sleep_s, out=out)
    return pipeline
'''


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The module above, imported from a file (kfp needs the component's source and real annotations)."""
    import importlib.util

    out = tmp_path_factory.mktemp("pipelines")
    source = out / "standin_pipelines.py"
    source.write_text(PIPELINES)
    spec = importlib.util.spec_from_file_location("standin_pipelines", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def api_spec(pipeline: Any, tmp_path: Path, patch: Any = None) -> dict:
    """The ``pipeline_spec`` of a run, as the launcher sends it (compiled, platform spec included)."""
    from kfp import compiler

    from hydra_plugins.navitune_kfp.pipeline import pipeline_spec_for_api
    from hydra_plugins.navitune_kfp.proxy import read_pipeline_docs, write_pipeline_docs

    path = tmp_path / f"{pipeline.name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    if patch is not None:
        write_pipeline_docs(patch(read_pipeline_docs(path)), path)
    return pipeline_spec_for_api(path)


@pytest.fixture()
def standin(tmp_path: Path) -> Iterator[tuple[FakeKFP, Executor]]:
    registry = Registry()
    registry.add(job_image(JOB_IMAGE, workdir=tmp_path))
    executor = Executor(registry, secrets={"app-db": {"password": "s3cret-pw"}, "app-key": {"key.json": "{}"}},
                        root=tmp_path / "pods", retry_backoff_scale=0.1)
    with FakeKFP(executor=executor) as server:
        yield server, executor


def client(server: FakeKFP) -> Any:
    import warnings

    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(host=server.url)


def submit(server: FakeKFP, spec: dict, params: dict | None = None, name: str = "r") -> str:
    """Create a run through kfp.Client, as the launcher does."""
    import kfp_server_api

    c = client(server)
    exp = c.create_experiment(name="standin")
    run = c.runs.run_service_create_run(run=kfp_server_api.V2beta1Run(
        experiment_id=exp.experiment_id, display_name=name, pipeline_spec=spec,
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=params or {})))
    return str(run.run_id)


def poll(server: FakeKFP, run_id: str, timeout_s: float = 60.0) -> tuple[Any, list[str]]:
    """Poll the run through kfp.Client until it ends; the run and the distinct states seen, in order."""
    c = client(server)
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        run = c.get_run(run_id)
        if not seen or seen[-1] != run.state:
            seen.append(str(run.state))
        if run.state in TERMINAL:
            return run, seen
        assert time.monotonic() < deadline, f"run {run_id} still {run.state} after {timeout_s} s"
        time.sleep(0.02)


# ------------------------------------------------------------------------------ the stand-in alone
def test_a_run_gets_its_parameters_placeholders_env_and_secrets(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, executor = standin
    spec = api_spec(pipelines._show(), tmp_path)
    run_id = submit(server, spec, {"x": "given"})
    run, seen = poll(server, run_id)
    assert run.state == "SUCCEEDED", run.error
    order = ["PENDING", "RUNNING", "SUCCEEDED"]
    assert seen[-1] == "SUCCEEDED" and seen == [state for state in order if state in seen]  # no going back
    assert [h.state for h in run.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]
    out = json.loads(executor.info(run_id)["output"]["Output"])
    record = server.runs[run_id]
    assert out["x"] == "given" and out["run_id"] == run_id
    # a one-off run: its scheduled time is its creation time, both in the backend's placeholder format
    created = dt.datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
    assert out["created"] == out["scheduled"] == created.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert out["pw"] == "s3cret-pw" and out["plain"] == "plain-value"  # secret as env, plain env
    assert out["cwd"] == str(tmp_path)  # the job image's working directory
    key = executor.info(run_id)["pod_dir"] / "fs" / "var" / "secrets" / "app" / "key.json"
    assert key.read_text() == "{}"  # secret as a volume: a file at its mount path (under the pod's root)
    assert "s3cret-pw" not in json.dumps(record["pipeline_spec"])  # by reference only


def test_a_run_fired_by_a_schedule_gets_its_scheduled_time(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    """What the recurring-run module calls: create + execute with the schedule's time."""
    server, executor = standin
    exp = server.add_experiment("sched")
    when = dt.datetime(2026, 1, 9, 13, 0, tzinfo=dt.timezone.utc)
    run = server.start_run(exp["experiment_id"], "cycle-1", api_spec(pipelines._show(), tmp_path), {"x": "s"},
                           scheduled_at=when, recurring_run_id="rr-1")
    done = server.wait_for(run["run_id"], 60)
    assert done["state"] == "SUCCEEDED" and done["recurring_run_id"] == "rr-1"
    out = json.loads(executor.info(run["run_id"])["output"]["Output"])
    assert out["scheduled"] == "2026-01-09T13:00:00Z" != out["created"]


def test_a_failed_task_fails_the_run_with_the_pods_message(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, _ = standin
    run_id = submit(server, api_spec(pipelines._show(), tmp_path), {"fail": "the model diverged at day 3"})
    run, _ = poll(server, run_id)
    assert run.state == "FAILED"
    assert run.error.message.startswith("Error: RuntimeError: the model diverged at day 3 (exit code 1)")
    assert run.run_details.task_details[0].error.message == run.error.message


def test_retry_policy_reruns_an_evicted_pod(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, executor = standin
    executor.evict_next(1, after_s=0.3)
    run_id = submit(server, api_spec(pipelines._show(retries=2, sleep_s=1.5), tmp_path))
    run, _ = poll(server, run_id)
    assert run.state == "SUCCEEDED", run.error
    assert executor.fired["evict"] == 1 and executor.info(run_id)["attempts"] == 2
    assert any("Evicted: Pod was evicted" in text for _, rid, text in executor.events if rid == run_id)


def test_without_a_retry_policy_an_eviction_fails_the_run(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, executor = standin
    executor.evict_next(1, after_s=0.3)
    run_id = submit(server, api_spec(pipelines._show(sleep_s=5.0), tmp_path))
    t0 = time.monotonic()
    run, _ = poll(server, run_id)
    assert time.monotonic() - t0 < 5
    assert run.state == "FAILED" and run.error.message.startswith("Evicted: Pod was evicted: The node was low")
    assert executor.processes(run_id) == []


def test_active_deadline_kills_the_pod(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, executor = standin
    run_id = submit(server, api_spec(pipelines._show(deadline=1, sleep_s=30.0), tmp_path))
    t0 = time.monotonic()
    run, _ = poll(server, run_id)
    assert 1 <= time.monotonic() - t0 < 10
    assert run.state == "FAILED" and run.error.message.startswith("DeadlineExceeded: Pod was active on the node")
    assert executor.processes(run_id) == []


def test_terminate_cancels_and_leaves_no_process(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, executor = standin
    run_id = submit(server, api_spec(pipelines._show(sleep_s=30.0), tmp_path))
    wait_until(lambda: executor.processes(run_id), 30, "the task to start")
    pids = executor.processes(run_id)
    client(server).terminate_run(run_id)
    assert server.runs[run_id]["state"] in ("CANCELING", "CANCELED")
    run, _ = poll(server, run_id, timeout_s=15)
    assert run.state == "CANCELED"
    wait_until(lambda: not any(alive(p) for p in pids), 10, "the pod's processes to be gone")


def test_kill_hook_kills_the_process_tree(pipelines: Any, standin: Any, tmp_path: Path) -> None:
    server, executor = standin
    run_id = submit(server, api_spec(pipelines._show(sleep_s=30.0), tmp_path))
    wait_until(lambda: executor.processes(run_id), 30, "the task to start")
    pids = executor.processes(run_id)
    assert executor.kill(run_id)
    run, _ = poll(server, run_id, timeout_s=15)
    assert run.state == "FAILED" and "the pod's processes were killed" in run.error.message
    assert not any(alive(p) for p in pids)


def test_shutdown_reaps_every_process_of_every_pod(pipelines: Any, tmp_path: Path) -> None:
    registry = Registry()
    registry.add(job_image(JOB_IMAGE, workdir=tmp_path))
    executor = Executor(registry, secrets={"app-db": {"password": "x"}, "app-key": {"key.json": "{}"}},
                        root=tmp_path / "pods")
    with FakeKFP(executor=executor) as server:
        spec = api_spec(pipelines._show(sleep_s=60.0), tmp_path)
        run_ids = [submit(server, spec, name=f"r{i}") for i in range(2)]
        wait_until(lambda: all(executor.processes(r) for r in run_ids), 30, "both tasks to start")
        pids = [p for r in run_ids for p in executor.processes(r)]
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 20
    assert not any(alive(p) for p in pids)
    assert {server.runs[r]["state"] for r in run_ids} == {"CANCELED"}


def test_missing_secret_and_unknown_image_fail_at_once(pipelines: Any, tmp_path: Path) -> None:
    registry = Registry()
    registry.add(job_image(JOB_IMAGE, workdir=tmp_path))
    with FakeKFP(executor=Executor(registry, secrets={}, root=tmp_path / "pods")) as server:
        run, _ = poll(server, submit(server, api_spec(pipelines._show(), tmp_path)))
        assert run.state == "FAILED"
        assert run.error.message == 'CreateContainerConfigError: secret "app-db" not found'
    with FakeKFP(executor=Executor(Registry(), root=tmp_path / "pods2")) as server:
        run, _ = poll(server, submit(server, api_spec(pipelines._show(), tmp_path)))
        assert run.state == "FAILED"
        assert run.error.message == (f'ErrImagePull: Failed to pull image "{JOB_IMAGE}": not found in the '
                                     "stand-in's registry")


def test_native_sidecar_starts_first_is_restarted_and_stopped_after(socat: str, pipelines: Any,
                                                                    tmp_path: Path) -> None:
    """The Cloud SQL proxy as our compiled pipelines declare it (an initContainers entry with restartPolicy
    Always), run as socat in front of an echo server standing in for the database."""
    from hydra_plugins.navitune_kfp.proxy import apply_proxy, proxy_settings

    echo_port, proxy_port = free_port(), free_port()
    echo = subprocess.Popen(["socat", f"TCP-LISTEN:{echo_port},bind=127.0.0.1,reuseaddr,fork", "EXEC:cat"],
                            start_new_session=True)
    try:
        wait_until(lambda: accepts(echo_port), 10, "the echo server")
        settings = proxy_settings({"proxy": {"mode": "native", "instance": INSTANCE, "port": proxy_port,
                                             "credentials_secret": "cloudsql-sa", "credentials_key": "key.json"}})
        out = tmp_path / "seen.txt"
        spec = api_spec(pipelines._proxied(proxy_port, 4.0, str(out)), tmp_path,
                        patch=lambda docs: apply_proxy(docs, settings))
        registry = Registry()
        registry.add(job_image(JOB_IMAGE, workdir=tmp_path))
        registry.add(proxy_image({INSTANCE: echo_port}))
        executor = Executor(registry, secrets={"cloudsql-sa": {"key.json": "{}"}}, root=tmp_path / "pods")
        executor.kill_sidecar_next(1, after_s=1.5)
        with FakeKFP(executor=executor) as server:
            run_id = submit(server, spec)
            run, _ = poll(server, run_id)
            assert run.state == "SUCCEEDED", run.error
            seen = out.read_text().split()
            assert seen[0] == "ping"  # the sidecar forwards to the "database" ...
            assert seen[-1] == "ping"  # ... and again after it was killed and restarted
            assert executor.fired["sidecar"] == 1 and executor.fired["restart"] >= 1
            assert not accepts(proxy_port)  # stopped after the task
            log = (executor.info(run_id)["pod_dir"] / "cloud-sql-proxy.log")
            assert log.exists()
    finally:
        echo.kill()
        echo.wait()


def _sleeper_spec(seconds: int) -> dict:
    """A one-task pipeline spec (the API's ``pipeline_spec`` with its platform spec) whose task and native
    sidecar both just sleep: pods that cost nothing but the stand-in's own waiting."""
    return {"pipeline_spec": {
        "pipelineInfo": {"name": "sleeper"},
        "root": {"dag": {"tasks": {"nap": {"componentRef": {"name": "comp-nap"}, "taskInfo": {"name": "nap"}}}}},
        "components": {"comp-nap": {"executorLabel": "exec-nap"}},
        "deploymentSpec": {"executors": {"exec-nap": {"container": {
            "image": "sleeper:standin", "command": ["sleep", str(seconds)]}}}}},
        "platform_spec": {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-nap": {
            "initContainers": [{"name": "side", "image": "sleeper:standin", "restartPolicy": "Always",
                                "command": ["sleep", str(seconds)]}]}}}}}}}


def _wakeups() -> int:
    """Voluntary context switches of every thread of this process so far: how often its threads woke up."""
    total = 0
    for status in Path("/proc/self/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        total += int(text.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


def test_waiting_pods_sleep_instead_of_polling(tmp_path: Path) -> None:
    """Pods whose task and sidecar run cost the stand-in almost no wake-ups (an exit, a cancel or a deadline
    wakes each wait; nothing polls), and a cancel still ends every pod at once."""
    from tools.standins.kfp_images import Image

    registry = Registry()
    registry.add(Image("sleeper:standin", lambda c, pod: c))
    executor = Executor(registry, root=tmp_path / "pods")
    pods = 8
    with FakeKFP(executor=executor) as server:
        exp = server.add_experiment("sleepers")["experiment_id"]
        runs = [server.create_run({"experiment_id": exp, "display_name": f"s{i}", "pipeline_spec": _sleeper_spec(60),
                                   "runtime_config": {"parameters": {}}})["run_id"] for i in range(pods)]
        wait_until(lambda: all(len(executor.processes(r)) == 2 for r in runs), 30, "every task and sidecar to run")
        time.sleep(0.3)  # let start-up settle
        before, t0 = _wakeups(), time.monotonic()
        time.sleep(1.0)
        per_s = (_wakeups() - before) / (time.monotonic() - t0)
        # polling waits (Popen.wait(timeout=0.05) in a loop, a sidecar checking every 50 ms) wake ~160 times a
        # second per pod; here the API server's own 20/s shutdown poll and this test's thread remain
        assert per_s < 15 * pods, f"{per_s:.0f} wake-ups/s with {pods} sleeping pods"
        assert all(len(executor.processes(r)) == 2 for r in runs)  # they were running all along
        pids = [p for r in runs for p in executor.processes(r)]
        t0 = time.monotonic()
        for r in runs:
            executor.terminate(r)
        for r in runs:
            assert server.wait_for(r, 15)["state"] == "CANCELED"
        assert time.monotonic() - t0 < 15
        wait_until(lambda: not any(alive(p) for p in pids), 10, "every pod's processes to be gone")


# ------------------------------------------------------------------------------------ real sweeps
APP = '''
import time

import hydra
from omegaconf import DictConfig

from hydra_plugins.navitune_optuna.reporting import current_trial


@hydra.main(config_path=".", config_name="config", version_base=None)
def task(cfg: DictConfig) -> float:
    """A few "days", each reported to the trial through the study database (via the proxy, if any)."""
    trial = current_trial()
    value = (cfg.x - 1.0) ** 2
    for step in range(cfg.steps):
        time.sleep(cfg.step_s)
        trial.report(step, value + 1.0 / (step + 1))
    return value


if __name__ == "__main__":
    task()
'''
APP_CONFIG = f'''
defaults:
  - override hydra/sweeper: optuna_async
  - override hydra/launcher: kfp
  - _self_
x: 0.0
steps: 3
step_s: 0.4
proxy:
  mode: none
  instance: {INSTANCE}
  port: 3306
  command: null
  start_timeout_s: 20
hydra:
  sweeper:
    sampler:
      seed: 7
    direction: minimize
    n_trials: 4
    progress: false
    params:
      x: interval(-2.0, 2.0)
'''
STORAGE = "mysql+pymysql://{user}:${{oc.env:DB_PW}}@127.0.0.1:${{oc.env:DB_PORT}}/{db}"


class SweepRig:
    """The executing stand-in (job image = this checkout with the app above as its working directory, the proxy
    image = socat to MariaDB, the DB password in its secret store) and a way to run a real sweep against it."""

    def __init__(self, tmp_path: Path, db: MariaDB, study: str, pod_network: bool = False,
                 direct_db: bool = True) -> None:
        """``pod_network``: every pod in its own network namespace; ``direct_db``: pods may then reach
        MariaDB's own port (else only through the proxy image, which reaches it through a bridge)."""
        self.tmp, self.db, self.study = tmp_path, db, study
        (tmp_path / "app.py").write_text(APP)
        (tmp_path / "config.yaml").write_text(APP_CONFIG)
        self.registry = Registry()
        self.registry.add(job_image(JOB_IMAGE, workdir=tmp_path))
        self.registry.add(proxy_image({INSTANCE: db.port}))
        self.executor = Executor(self.registry, secrets={"navitune-db": {"password": db.password}},
                                 root=tmp_path / "pods", pod_network=pod_network,
                                 host_ports=[db.port] if direct_db else [])
        self.server = FakeKFP(executor=self.executor)

    def sweep(self, *extra: str, n_jobs: int = 2, n_trials: int = 4, db_port: int | None = None,
              timeout_s: float = 400) -> subprocess.CompletedProcess:
        """``python app.py -m`` with the kfp launcher, backend=remote; the job reaches the database on
        ``db_port`` (a proxy's port, or MariaDB's own), the sweeper on MariaDB's own."""
        storage = STORAGE.format(user=self.db.user, db=self.db.database)
        cmd = [sys.executable, "app.py", "-m",
               "hydra.launcher.backend=remote", f"hydra.launcher.host={self.server.url}",
               f"hydra.launcher.image={JOB_IMAGE}", "hydra.launcher.poll_interval=0.2",
               "hydra.launcher.api_backoff_s=0.2", "hydra.launcher.api_retries=4",
               f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweeper.n_jobs={n_jobs}",
               f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.study_name={self.study}",
               f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={self.tmp / 'sweep'}",
               "hydra.launcher.secrets=[{secret_name: navitune-db, secret_key_to_env: {password: DB_PW}}]",
               f"++hydra.launcher.env={{DB_PORT: '{db_port or self.db.port}'}}", *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVITUNE_", "HYDRA_"))}
        env.update(DB_PW=self.db.password, DB_PORT=str(self.db.port))
        return subprocess.run(cmd, cwd=self.tmp, env=env, capture_output=True, text=True, timeout=timeout_s)

    def check_ended_exactly(self, n_trials: int = 4) -> list[Any]:
        """Exactly n_trials finished trials, each reported by its job; one run per launched trial attempt,
        none twice; every run ended and its processes gone. Returns the study's trials."""
        import optuna
        from optuna.trial import TrialState

        study = optuna.load_study(study_name=self.study, storage=self.db.url())
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == n_trials, [(t.number, t.state) for t in trials]
        assert all(t.intermediate_values for t in finished if t.state == TrialState.COMPLETE)
        runs = list(self.server.runs.values())
        names = [r["display_name"] for r in runs]
        assert len(names) == len(set(names)), f"a run was submitted twice: {sorted(names)}"
        launched = [t for t in trials if t.state != TrialState.WAITING]
        assert len(runs) == len(launched), (sorted(names), [(t.number, t.state) for t in trials])
        assert all(r["state"] in TERMINAL for r in runs), [(r["display_name"], r["state"]) for r in runs]
        assert all(self.executor.processes(r["run_id"]) == [] for r in runs)
        return trials

    def failed_runs(self) -> list[dict]:
        return [r for r in self.server.runs.values() if r["state"] == "FAILED"]


@pytest.fixture()
def rig(request: pytest.FixtureRequest, tmp_path: Path, mariadb: MariaDB, socat: str) -> Iterator[SweepRig]:
    import hashlib

    study = "exec_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    options = dict(getattr(request, "param", {}))
    if options.get("pod_network"):
        request.getfixturevalue("pod_network")
    r = SweepRig(tmp_path, mariadb, study, **options)
    with r.server:
        yield r


def _last_lines(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n{proc.stderr[-4000:]}"


@pytest.mark.slow
def test_a_sweep_runs_its_trials_in_the_standin(rig: SweepRig) -> None:
    """No proxy: the jobs reach MariaDB directly, two in flight; the password only from the secret store."""
    proc = rig.sweep()
    assert proc.returncode == 0, _last_lines(proc)
    rig.check_ended_exactly()
    assert rig.failed_runs() == []
    for run in rig.server.runs.values():  # the password travelled by reference only
        assert rig.db.password not in json.dumps(run["pipeline_spec"]) + json.dumps(run["runtime_config"])


@pytest.mark.slow
@pytest.mark.parametrize("mode, rig", [("native", {"pod_network": True, "direct_db": False}),
                                       ("process", {"pod_network": True, "direct_db": True})],
                         indirect=["rig"], ids=["native", "process"])
def test_a_sweep_through_the_cloud_sql_proxy(rig: SweepRig, mode: str) -> None:
    """The jobs reach the study only through the proxy's port, two jobs in flight, each pod with its own
    network (so both proxies listen on one port): the native sidecar the compiled pipeline declares (run by the
    stand-in from the proxy image; the job's pod cannot reach MariaDB's own port at all), or the process the
    job starts itself."""
    port = free_port()
    extra = [f"proxy.mode={mode}", f"proxy.port={port}"]
    if mode == "process":
        extra.append(f"proxy.command=[socat,'TCP-LISTEN:{{port}},bind=127.0.0.1,reuseaddr,fork',"
                     f"'TCP:127.0.0.1:{rig.db.port}']")
    proc = rig.sweep(*extra, n_jobs=2, n_trials=4, db_port=port)
    assert proc.returncode == 0, _last_lines(proc)
    rig.check_ended_exactly(4)
    logs = list((rig.tmp / "pods").glob("run-*/attempt-*/cloud-sql-proxy.log"))
    assert len(logs) == (len(rig.server.runs) if mode == "native" else 0)
    starts = sorted(t for t, _, text in rig.executor.events if text.endswith(": started"))
    ends = sorted(t for t, _, text in rig.executor.events if text.startswith("SUCCEEDED"))
    assert starts[1] < ends[0], "never two jobs in flight"
    assert not accepts(port)  # no proxy outlived its job (nor listened on this machine's port)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["evict", "pull", "api-5xx", "kill"])
def test_a_sweep_survives_a_fault(rig: SweepRig, fault: str) -> None:
    """Each fault fails one attempt at most (the job pipeline has no retry policy: the sweeper retries the
    trial as its next attempt, a new run), and the sweep still ends with exactly n_trials."""
    stop = threading.Event()
    killed: list[str] = []
    if fault == "evict":
        rig.executor.evict_next(1, after_s=1.0)
    elif fault == "pull":
        rig.executor.fail_pulls(JOB_IMAGE, 1)
    elif fault == "api-5xx":
        rig.server.fail("POST", "/apis/v2beta1/runs", 503)
        rig.server.fail("GET", r"/apis/v2beta1/runs/run-\d+", 502, 500, 503)
    else:
        def killer() -> None:  # the first run whose task is running: its whole process tree, now
            while not stop.is_set():
                for run_id in list(rig.executor.runs):
                    if rig.executor.processes(run_id) and rig.executor.kill(run_id, "killed by the test"):
                        killed.append(run_id)
                        return
                stop.wait(0.05)

        threading.Thread(target=killer, daemon=True).start()
    try:
        proc = rig.sweep()
    finally:
        stop.set()
    assert proc.returncode == 0, _last_lines(proc)
    rig.check_ended_exactly()
    failed = rig.failed_runs()
    if fault == "evict":
        assert rig.executor.fired["evict"] == 1
        assert [r["error"]["message"].split(":")[0] for r in failed] == ["Evicted"]
    elif fault == "pull":
        assert rig.executor.fired["pull"] == 1
        assert [r["error"]["message"].split(":")[0] for r in failed] == ["ErrImagePull"]
    elif fault == "api-5xx":
        assert failed == []
        statuses = [r.status for r in rig.server.attempts("GET", r"/apis/v2beta1/runs/run-\d+")]
        assert statuses[:3] == [502, 500, 503]
        assert [r.status for r in rig.server.attempts("POST", "/apis/v2beta1/runs")][0] == 503
    else:
        assert len(killed) == 1 and rig.executor.fired["kill"] == 1
        assert [r["run_id"] for r in failed] == killed
        assert "killed by the test" in failed[0]["error"]["message"]


@pytest.mark.slow
@pytest.mark.parametrize("rig", [{"pod_network": True, "direct_db": False}], indirect=True)
def test_a_sweep_survives_a_dying_sidecar(rig: SweepRig) -> None:
    """The native sidecar is killed under a running job: the pod restarts it, and the sweep ends at n_trials
    (the job rides it out, or fails and its trial is retried)."""
    port = free_port()
    rig.executor.kill_sidecar_next(1, after_s=1.0)
    proc = rig.sweep("proxy.mode=native", f"proxy.port={port}", db_port=port)
    assert proc.returncode == 0, _last_lines(proc)
    rig.check_ended_exactly()
    assert rig.executor.fired["sidecar"] == 1 and rig.executor.fired["restart"] >= 1


@pytest.mark.slow
def test_a_failed_pod_shows_its_message_in_the_launchers_one_line_error(rig: SweepRig) -> None:
    """An image the registry does not have: the run FAILS with the pod's message, which is the launcher's
    one-line error for the trial."""
    proc = rig.sweep("hydra.launcher.image=registry.example/nope:1", "hydra.sweeper.max_retries=0",
                     n_jobs=1, n_trials=1)
    assert proc.returncode != 0
    (run,) = rig.server.runs.values()
    message = 'ErrImagePull: Failed to pull image "registry.example/nope:1": not found in the stand-in\'s registry'
    assert run["state"] == "FAILED" and run["error"]["message"] == message
    lines = [ln for ln in proc.stderr.splitlines() if f"KFP run {run['display_name']}" in ln and "FAILED" in ln]
    assert lines, _last_lines(proc)
    assert lines[0].rstrip().endswith(f"FAILED: {message}")


def test_pods_with_their_own_network_listen_on_one_port(socat: str, pod_network: bool, pipelines: Any,
                                                        tmp_path: Path) -> None:
    """Two pods at once, each with its native sidecar on the same port (as every job of a sweep has): each pod
    has its own loopback, and reaches the machine's "database" only through the bridged port."""
    from hydra_plugins.navitune_kfp.proxy import apply_proxy, proxy_settings

    echo_port, proxy_port = free_port(), free_port()
    echo = subprocess.Popen(["socat", f"TCP-LISTEN:{echo_port},bind=127.0.0.1,reuseaddr,fork", "EXEC:cat"],
                            start_new_session=True)
    try:
        wait_until(lambda: accepts(echo_port), 10, "the echo server")
        settings = proxy_settings({"proxy": {"mode": "native", "instance": INSTANCE, "port": proxy_port}})
        registry = Registry()
        registry.add(job_image(JOB_IMAGE, workdir=tmp_path))
        registry.add(proxy_image({INSTANCE: echo_port}))
        executor = Executor(registry, root=tmp_path / "pods", pod_network=True, host_ports=[echo_port])
        outs = [tmp_path / f"seen{i}.txt" for i in range(2)]
        with FakeKFP(executor=executor) as server:
            run_ids = [submit(server, api_spec(pipelines._proxied(proxy_port, 3.0, str(out)), tmp_path,
                                               patch=lambda docs: apply_proxy(docs, settings)), name=f"r{i}")
                       for i, out in enumerate(outs)]
            wait_until(lambda: all(executor.processes(r) for r in run_ids), 30, "both pods to start")
            assert not accepts(proxy_port)  # the sidecars listen in their pods, not on this machine
            for run_id in run_ids:
                run, _ = poll(server, run_id)
                assert run.state == "SUCCEEDED", run.error
            starts = sorted(t for t, r, text in executor.events if r in run_ids and text.endswith(": started"))
            ends = sorted(t for t, r, text in executor.events if r in run_ids and text.startswith("SUCCEEDED"))
            assert len(starts) == 2 and starts[1] < ends[0]  # both in flight at once, on the same port
        for out in outs:
            seen = out.read_text().split()
            assert seen and set(seen) == {"ping"}, seen
        assert not any(alive(p) for r in run_ids for p in executor.processes(r))
    finally:
        echo.kill()
        echo.wait()
