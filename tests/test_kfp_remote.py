"""``hydra/launcher=kfp`` with ``backend=remote`` against ``tools/standins/kfp_api_server.FakeKFP``.

FakeKFP stands in for a Kubeflow Pipelines cluster (none exists here): it serves the ``/apis/v2beta1`` endpoints
the real ``kfp.Client`` calls, runs nothing, and lets each test script the states of a run. The launcher talks
to it through the real kfp.Client; the study storage (where a remote job leaves its result) is a real MariaDB
server (``tests/fixtures/mariadb``), reached with a password from the environment.

Checked: request shapes (experiment, run body, parameters without the secret), experiment reuse, re-attach to
an existing run instead of a second create, every end state (SUCCEEDED with the objective, FAILED with the
job's error and type, FAILED without a result, CANCELED, CANCELING, SKIPPED, PAUSED then SUCCEEDED, timeout
with terminate), HTTP 5xx retried with growing pauses (a create retried without a duplicate run), HTTP 4xx
not retried, and the job entrypoint run from the recorded parameters, as a pod would (with the run's id
and UI page in its environment, and the experiment's page in the sweeper's).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus, setup_globals
from hydra.types import HydraContext

from hydra_plugins.navitune_kfp.results import ResultStore
from tests.fixtures.mariadb import MariaDB
from tools.standins.kfp_api_server import FakeKFP

Plugins.instance()
ROOT = Path(__file__).resolve().parent.parent
PW_ENV = "NAVITUNE_TEST_DB_PW"
CONFIG = """\
defaults:
  - override hydra/sweeper: optuna_async
  - override hydra/launcher: kfp
  - _self_
x: 1
env_out: null
"""
RUN_ENV = ("NAVITUNE_KFP_RUN_ID", "NAVITUNE_KFP_RUN_URL")
EXPERIMENT_URL_ENV = "NAVITUNE_KFP_EXPERIMENT_URL"


def objective(cfg: Any) -> float:
    """The task function (importable by name, as a remote job needs); with ``env_out`` it writes the KFP run
    variables it sees there."""
    if cfg.get("env_out"):
        Path(cfg.env_out).write_text(json.dumps({k: os.environ.get(k) for k in RUN_ENV}))
    if cfg.get("fail"):
        raise ValueError(f"bad x={cfg.x}")
    return float(cfg.x) ** 2


def trial_overrides(study: str, origin: int, attempt: int, x: float = 3.0) -> list[str]:
    """What the optuna_async sweeper hands the launcher for a trial."""
    env = "++hydra.job.env_set.NAVITUNE_OPTUNA_"
    return [f"x={x}", f"{env}STUDY={study}", f"{env}TRIAL={origin + attempt}", f"{env}ATTEMPT={attempt}",
            f"{env}ORIGIN={origin}"]


class Sweep:
    """A composed sweep config, a launcher set up on it, and the study the jobs belong to."""

    def __init__(self, tmp_path: Path, server: FakeKFP, db: MariaDB, study: str, extra: list[str]) -> None:
        self.server, self.study, self.db = server, study, db
        self.storage_url = db.url(password="${oc.env:" + PW_ENV + "}")
        conf = tmp_path / "conf"
        conf.mkdir(exist_ok=True)
        (conf / "config.yaml").write_text(CONFIG)
        self.overrides = [
            "hydra.launcher.backend=remote", f"hydra.launcher.host={server.url}",
            "hydra.launcher.poll_interval=0.02", "hydra.launcher.api_backoff_s=0.1", "hydra.launcher.api_retries=3",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.sweeper.storage={self.storage_url}",
            f"hydra.sweeper.study_name={study}", "hydra.launcher.service_account=sim-runner",
            "hydra.launcher.image=registry.example/navitune-job:test",
            f"hydra.launcher.secrets=[{{secret_name: navitune-db, secret_key_to_env: {{password: {PW_ENV}}}}}]",
            *extra,
        ]
        self.conf = conf
        optuna.create_study(study_name=study, storage=db.url(), direction="maximize", load_if_exists=True)

    def launcher(self) -> Any:
        cfg = compose("config", overrides=self.overrides, return_hydra_config=True)
        gh = GlobalHydra.instance()
        ctx = HydraContext(config_loader=gh.config_loader(), callbacks=Callbacks(),
                           execution_whitelist=["tests.*"])
        setup_globals()
        return Plugins.instance().instantiate_launcher(config=cfg, hydra_context=ctx, task_function=objective)

    def study_id(self) -> int:
        return optuna.load_study(study_name=self.study, storage=self.db.url())._study_id

    def publish(self, run_name: str, payload: dict) -> None:
        """What the job in the pod does once it has a result."""
        ResultStore(self.db.url(), self.study).publish(run_name, payload)


@pytest.fixture()
def server() -> Iterator[FakeKFP]:
    with FakeKFP() as fake:
        yield fake


@pytest.fixture()
def sweep(request: pytest.FixtureRequest, tmp_path: Path, server: FakeKFP, mariadb: MariaDB,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Sweep]:
    monkeypatch.setenv(PW_ENV, mariadb.password)
    monkeypatch.setenv(EXPERIMENT_URL_ENV, "stale")  # what an earlier sweep in this process may have left ...
    monkeypatch.delenv(EXPERIMENT_URL_ENV)  # ... and this test's launcher sets: gone again after the test
    extra = list(getattr(request, "param", []))
    study = "kfp_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]  # one study per test
    s = Sweep(tmp_path, server, mariadb, study, extra)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(s.conf)):
        yield s
    GlobalHydra.instance().clear()


# ------------------------------------------------------------------------------------ request shapes
def test_request_shapes_experiment_and_no_secret(sweep: Sweep, server: FakeKFP, mariadb: MariaDB) -> None:  # noqa: F811
    os.environ[EXPERIMENT_URL_ENV] = "http://kfp.example/#/experiments/details/of-an-earlier-sweep"
    launcher = sweep.launcher()
    created = server.calls("POST", "/apis/v2beta1/experiments")
    assert [r.body["display_name"] for r in created] == [sweep.study]  # experiment = study name
    # the experiment's UI page, for the sweeper process's callbacks (e.g. the Slack finish message)
    (exp_id,) = server.experiments
    assert os.environ[EXPERIMENT_URL_ENV] == f"{server.url}/#/experiments/details/{exp_id}"
    name = f"{sweep.study}-t4-a1"
    server.script(name, "RUNNING", "SUCCEEDED",
                  on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 42.5}))
    ret = launcher.submit(trial_overrides(sweep.study, origin=4, attempt=1), 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 42.5

    (create,) = server.calls("POST", "/apis/v2beta1/runs")
    body = create.body
    assert body["display_name"] == name
    assert body["experiment_id"] == next(iter(server.experiments))
    assert body["service_account"] == "sim-runner"
    params = body["runtime_config"]["parameters"]
    assert sorted(params) == ["config_yaml", "options_json", "run_name", "task_function"]
    assert params["task_function"] == "tests.test_kfp_remote:objective"
    assert params["run_name"] == name
    options = json.loads(params["options_json"])
    assert options["publish"] is True
    assert options["kfp_ui"] == server.url  # the job forms its run's link from it
    assert "${oc.env:" + PW_ENV + "}" in params["config_yaml"]  # the interpolation travels, not the password
    assert mariadb.password not in json.dumps(body)
    spec = body["pipeline_spec"]
    executor = spec["pipeline_spec"]["deploymentSpec"]["executors"]["exec-navitune-job"]["container"]
    assert executor["image"] == "registry.example/navitune-job:test"
    k8s = spec["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-navitune-job"]
    assert k8s["secretAsEnv"][0]["secretName"] == "navitune-db"
    assert k8s["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "password", "envVar": PW_ENV}]
    # the job gets its run's id from KFP's placeholder, a constant of the task (not a run parameter)
    task_params = spec["pipeline_spec"]["root"]["dag"]["tasks"]["navitune-job"]["inputs"]["parameters"]
    assert task_params["kfp_run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    # polling: get_run until the end state, nothing else after the create
    gets = server.calls("GET", r"/apis/v2beta1/runs/run-\d+")
    assert len(gets) == 2  # created PENDING, then GET: RUNNING, GET: SUCCEEDED
    launcher.shutdown()

    # a new sweeper process on the same study finds the experiment instead of creating another
    again = sweep.launcher()
    assert len(server.calls("POST", "/apis/v2beta1/experiments")) == 1
    lookups = server.calls("GET", "/apis/v2beta1/experiments")
    assert json.loads(lookups[-1].query["filter"])["predicates"][0]["stringValue"] == sweep.study
    again.shutdown()


def test_the_sweeper_sets_its_launcher_up_once(sweep: Sweep, server: FakeKFP) -> None:
    """optuna_async builds one launcher per sweep and gives it to hydra-optuna-sweeper's machinery (whose own
    setup() would build a second one): the kfp launcher's set-up, which compiles and finds or creates the KFP
    experiment, runs once."""
    cfg = compose("config", overrides=sweep.overrides, return_hydra_config=True)
    gh = GlobalHydra.instance()
    ctx = HydraContext(config_loader=gh.config_loader(), callbacks=Callbacks(), execution_whitelist=["tests.*"])
    setup_globals()
    sweeper = Plugins.instance().instantiate_sweeper(config=cfg, hydra_context=ctx, task_function=objective)
    try:
        # one set-up: looked up, created, looked up again (the oldest of its name wins a race with a peer);
        # a second launcher would have looked it up a third time
        assert len(server.calls("GET", "/apis/v2beta1/experiments")) == 2
        assert len(server.calls("POST", "/apis/v2beta1/experiments")) == 1
        impl = sweeper.sweeper
        assert impl._base.launcher is impl.launcher
    finally:
        sweeper.sweeper.launcher.shutdown()


def test_reattaches_to_an_existing_run_instead_of_submitting_again(sweep: Sweep, server: FakeKFP) -> None:
    exp = server.add_experiment(sweep.study)
    name = f"{sweep.study}-t7-a0"
    options = {"publish": True, "study_id": sweep.study_id()}
    old = server.add_run(exp["experiment_id"], name, state="RUNNING",  # left by a sweeper that died
                         parameters={"run_name": name, "options_json": json.dumps(options)})
    server.script(name, "RUNNING", "SUCCEEDED",
                  on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 9.0}))
    launcher = sweep.launcher()
    # the restarted sweeper retries the stale trial 7 as a new trial (number 12) of the SAME attempt
    overrides = trial_overrides(sweep.study, origin=7, attempt=0)
    overrides[2] = "++hydra.job.env_set.NAVITUNE_OPTUNA_TRIAL=12"
    ret = launcher.submit(overrides, 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 9.0
    assert server.calls("POST", "/apis/v2beta1/runs") == []  # no second run for the same attempt
    assert server.calls("POST", "/apis/v2beta1/experiments") == []  # the experiment was reused
    assert {r.path for r in server.calls("GET", r"/apis/v2beta1/runs/.*")} == {f"/apis/v2beta1/runs/{old['run_id']}"}
    launcher.shutdown()


def test_a_run_of_an_earlier_study_of_the_same_name_is_not_reattached(sweep: Sweep, server: FakeKFP) -> None:
    """The study was deleted and created again: its trial 7 is not the old study's trial 7."""
    exp = server.add_experiment(sweep.study)
    name = f"{sweep.study}-t7-a0"
    earlier = {"publish": True, "study_id": sweep.study_id() + 1000}
    old = server.add_run(exp["experiment_id"], name, state="SUCCEEDED",
                         parameters={"run_name": name, "options_json": json.dumps(earlier)})
    launcher = sweep.launcher()
    server.script(name, "RUNNING", "SUCCEEDED",
                  on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 5.0}))
    ret = launcher.submit(trial_overrides(sweep.study, origin=7, attempt=0), 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 5.0
    (create,) = server.calls("POST", "/apis/v2beta1/runs")
    options = json.loads(create.body["runtime_config"]["parameters"]["options_json"])
    assert options["study_id"] == sweep.study_id()
    assert [r for r in server.runs if r != old["run_id"]]  # a new run beside the old one
    launcher.shutdown()


# --------------------------------------------------------------------------------------- end states
def _pruned(name: str) -> dict:
    return {"status": "FAILED", "run_name": name, "error": {
        "module": "optuna.exceptions", "qualname": "TrialPruned", "message": "pruned after day 2",
        "traceback": [["/app/experiment/trial.py", "on_day", 37]], "chain": []}}


def test_failed_run_returns_the_jobs_error_and_type(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t2-a0"
    server.script(name, "RUNNING", "FAILED", error="TrialPruned: pruned after day 2",
                  on_end=lambda run: sweep.publish(name, _pruned(name)))
    ret = launcher.submit(trial_overrides(sweep.study, 2, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.FAILED
    err = ret._return_value
    assert type(err).__name__ == "TrialPruned" and isinstance(err, optuna.TrialPruned)  # what the sweeper checks
    with pytest.raises(optuna.TrialPruned, match="pruned after day 2") as info:
        ret.return_value
    assert any(f.name == "on_day" for f in __import__("traceback").extract_tb(info.value.__traceback__))
    launcher.shutdown()


def test_failed_run_without_a_result_carries_the_runs_error(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t5-a0"
    server.script(name, "PENDING", "FAILED", error="ErrImagePull: registry.example/navitune-job:test not found")
    ret = launcher.submit(trial_overrides(sweep.study, 5, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.FAILED
    assert type(ret._return_value).__name__ == "RunFailed"
    assert "ErrImagePull: registry.example/navitune-job:test not found" in str(ret._return_value)
    assert name in str(ret._return_value)
    launcher.shutdown()


@pytest.mark.parametrize("states, error_type, words", [
    (("RUNNING", "CANCELED"), "RunCanceled", "was canceled (CANCELED)"),
    (("RUNNING", "CANCELING"), "RunCanceled", "was canceled (CANCELING)"),
    (("SKIPPED",), "RunSkipped", "SKIPPED"),
])
def test_canceled_and_skipped_runs_fail_the_job(sweep: Sweep, server: FakeKFP, states: tuple, error_type: str,
                                                words: str) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t1-a0"
    server.script(name, *states)
    ret = launcher.submit(trial_overrides(sweep.study, 1, 0), 0).result(timeout=30)
    # it stops at the first final answer (kfp's own wait would go on polling until its timeout)
    assert len(server.calls("GET", r"/apis/v2beta1/runs/run-\d+")) == len(states)
    assert ret.status == JobStatus.FAILED and type(ret._return_value).__name__ == error_type
    assert words in str(ret._return_value)
    launcher.shutdown()


def test_paused_run_is_waited_for(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t6-a0"
    server.script(name, "RUNNING", "PAUSED", "PAUSED", "RUNNING", "SUCCEEDED",
                  on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 1.5}))
    ret = launcher.submit(trial_overrides(sweep.study, 6, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 1.5
    assert len(server.calls("GET", r"/apis/v2beta1/runs/run-\d+")) == 5  # through both PAUSED answers
    launcher.shutdown()


def test_succeeded_run_without_a_result_fails(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    server.script(f"{sweep.study}-t8-a0", "SUCCEEDED")
    ret = launcher.submit(trial_overrides(sweep.study, 8, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.FAILED and type(ret._return_value).__name__ == "RunResultMissing"
    launcher.shutdown()


@pytest.mark.parametrize("sweep", [["hydra.launcher.timeout_s=0.3"]], indirect=True)
def test_timeout_terminates_the_run(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t3-a0"
    server.script(name, "RUNNING")  # never ends
    t0 = time.monotonic()
    ret = launcher.submit(trial_overrides(sweep.study, 3, 0), 0).result(timeout=30)
    elapsed = time.monotonic() - t0
    assert ret.status == JobStatus.FAILED and type(ret._return_value).__name__ == "RunTimedOut"
    assert "timeout_s=0.3" in str(ret._return_value)
    assert 0.3 <= elapsed < 10
    (terminate,) = server.calls("POST", r"/apis/v2beta1/runs/run-\d+:terminate")
    run_id = terminate.path.split("/")[-1].split(":")[0]
    assert server.runs[run_id]["display_name"] == name
    launcher.shutdown()


# ---------------------------------------------------------------------------------- HTTP errors
def test_5xx_is_retried_with_growing_pauses_and_no_duplicate_run(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t9-a0"
    server.script(name, "RUNNING", "SUCCEEDED",
                  on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 2.0}))
    server.fail("POST", "/apis/v2beta1/runs", 503, 502)
    server.fail("GET", r"/apis/v2beta1/runs/run-\d+", 500)
    ret = launcher.submit(trial_overrides(sweep.study, 9, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 2.0
    posts = server.attempts("POST", "/apis/v2beta1/runs")
    assert [r.status for r in posts] == [503, 502, 200]
    gaps = [b.at - a.at for a, b in zip(posts, posts[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # api_backoff_s=0.1, doubling
    assert len(server.runs) == 1  # one run despite three create attempts
    gets = server.attempts("GET", r"/apis/v2beta1/runs/run-\d+")
    assert gets[0].status == 500 and all(g.status == 200 for g in gets[1:])
    launcher.shutdown()


def test_a_create_that_failed_after_creating_is_not_doubled(sweep: Sweep, server: FakeKFP) -> None:
    """A gateway can answer 504 although the API created the run: the retry finds it by name."""
    launcher = sweep.launcher()
    name = f"{sweep.study}-t10-a0"
    server.script(name, "SUCCEEDED", on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 3.0}))
    original = server._route

    def create_then_504(method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        status, payload = original(method, path, query, body)
        if method == "POST" and path == "/apis/v2beta1/runs" and len(server.runs) == 1 and not hasattr(server, "_done"):
            server._done = True  # type: ignore[attr-defined]
            return 504, {"code": 14, "message": "gateway timeout"}
        return status, payload

    server._route = create_then_504  # type: ignore[method-assign]
    ret = launcher.submit(trial_overrides(sweep.study, 10, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 3.0
    assert len(server.runs) == 1
    launcher.shutdown()


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_4xx_is_not_retried(sweep: Sweep, server: FakeKFP, status: int) -> None:
    """A 4xx answer (other than 429) is the request's fault: the job fails at once, in one line that carries
    the status (as a number too, for callers that branch on it)."""
    launcher = sweep.launcher()
    server.fail("POST", "/apis/v2beta1/runs", status)
    ret = launcher.submit(trial_overrides(sweep.study, 11, 0), 0).result(timeout=30)
    err = ret._return_value
    assert ret.status == JobStatus.FAILED and type(err).__name__ == "KFPApiError"
    assert err.status == status
    assert str(err).startswith(f"create run: HTTP {status} ") and "\n" not in str(err), str(err)
    assert len(server.attempts("POST", "/apis/v2beta1/runs")) == 1
    launcher.shutdown()


def test_429_is_retried(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    name = f"{sweep.study}-t15-a0"
    server.script(name, "SUCCEEDED", on_end=lambda run: sweep.publish(name, {"status": "COMPLETED", "value": 4.0}))
    server.fail("POST", "/apis/v2beta1/runs", 429)
    ret = launcher.submit(trial_overrides(sweep.study, 15, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 4.0
    assert [r.status for r in server.attempts("POST", "/apis/v2beta1/runs")] == [429, 200]
    launcher.shutdown()


def test_a_run_deleted_while_waited_for_fails_by_the_404_status(sweep: Sweep, server: FakeKFP) -> None:
    """GET of the run answers 404: the run is gone, the job fails as RunFailed. A 400 whose message happens to
    say "HTTP 404" is no such answer: judged by the status, it stays an API error."""
    launcher = sweep.launcher()
    server.script(f"{sweep.study}-t16-a0", "RUNNING")
    server.fail("GET", r"/apis/v2beta1/runs/run-\d+", 404)
    ret = launcher.submit(trial_overrides(sweep.study, 16, 0), 0).result(timeout=30)
    assert ret.status == JobStatus.FAILED and type(ret._return_value).__name__ == "RunFailed"
    assert "no longer exists" in str(ret._return_value)

    original = server._route

    def bad_request_naming_404(method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if method == "GET" and path.startswith("/apis/v2beta1/runs/run-"):
            return 400, {"code": 3, "message": "HTTP 404 appears in this text only"}
        return original(method, path, query, body)

    server._route = bad_request_naming_404  # type: ignore[method-assign]
    server.script(f"{sweep.study}-t17-a0", "RUNNING")
    ret = launcher.submit(trial_overrides(sweep.study, 17, 0), 0).result(timeout=30)
    err = ret._return_value
    assert ret.status == JobStatus.FAILED and type(err).__name__ == "KFPApiError" and err.status == 400, err
    launcher.shutdown()


@pytest.mark.parametrize("sweep", [["hydra.launcher.cancel_on_shutdown=true"], []], indirect=True)
def test_shutdown_leaves_runs_or_terminates_them(sweep: Sweep, server: FakeKFP) -> None:
    launcher = sweep.launcher()
    server.script(f"{sweep.study}-t13-a0", "RUNNING")
    fut = launcher.submit(trial_overrides(sweep.study, 13, 0), 0)
    deadline = time.monotonic() + 60
    while not server.calls("GET", r"/apis/v2beta1/runs/run-\d+"):  # the run exists and is being watched
        assert time.monotonic() < deadline, "the launcher never polled the run"
        time.sleep(0.01)
    launcher.shutdown()
    ret = fut.result(timeout=60)
    assert ret.status == JobStatus.FAILED and type(ret._return_value).__name__ == "LauncherShutdown"
    terminated = server.calls("POST", r"/apis/v2beta1/runs/run-\d+:terminate")
    cancel = "hydra.launcher.cancel_on_shutdown=true" in sweep.overrides
    assert len(terminated) == (1 if cancel else 0)


# ------------------------------------------------------------------------- the job, as the pod runs it
def test_the_recorded_parameters_run_the_job_and_bring_its_objective_back(sweep: Sweep, server: FakeKFP,
                                                                           tmp_path: Path, mariadb: MariaDB) -> None:  # noqa: F811
    """Play the pod: run the job entrypoint with exactly the inputs the backend gives the run's task (the
    parameters the launcher sent, the run's id from KFP's placeholder), with the password only in the
    environment (as the Secret would set it); the launcher then reads the objective back. The task sees its
    run's id and UI page in its environment."""
    launcher = sweep.launcher()
    name = f"{sweep.study}-t14-a0"
    seen = tmp_path / "env.json"

    def pod(run: dict) -> None:
        inputs = server.task_inputs(run)
        assert inputs["kfp_run_id"] == run["run_id"]
        code = ("import json, sys; from hydra_plugins.navitune_kfp.job import run; "
                "p = json.load(sys.stdin); print(run(**p))")
        env = {**os.environ, PW_ENV: mariadb.password, "PYTHONPATH": str(ROOT)}  # imports tests.test_kfp_remote
        env.pop("NAVITUNE_KFP_RUN_ID", None)
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(inputs), capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]

    server.script(name, "RUNNING", "SUCCEEDED", on_end=pod)
    ret = launcher.submit([*trial_overrides(sweep.study, 14, 0, x=1.5), f"env_out={seen}"], 0).result(timeout=120)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == pytest.approx(2.25)
    summary = next((tmp_path / "sweep").rglob(".hydra/overrides.yaml"))
    assert "x=1.5" in summary.read_text()
    (run_id,) = server.runs
    assert json.loads(seen.read_text()) == {"NAVITUNE_KFP_RUN_ID": run_id,
                                            "NAVITUNE_KFP_RUN_URL": f"{server.url}/#/runs/details/{run_id}"}
    launcher.shutdown()


def test_run_links_leave_credentials_out_and_prefer_the_ui_host() -> None:
    """What a remote job exports: the run's page under the UI base the launcher sends (``ui_host``, else
    ``host``; never a ``user:password@`` of the URL); an id no runner resolved, or none, exports nothing."""
    from hydra_plugins.navitune_kfp.job import run_env
    from hydra_plugins.navitune_kfp.settings import check, ui_base

    remote = check({"backend": "remote", "host": "https://kfp:hunter2@kfp.example:8443/"})
    assert ui_base(remote) == "https://kfp.example:8443"
    ui = check({"backend": "remote", "host": "http://localhost:8080", "ui_host": "https://console.example/kfp/"})
    assert ui_base(ui) == "https://console.example/kfp"
    assert ui_base(check({"backend": "local", "host": "http://localhost:8080"})) is None  # no UI page locally
    options = {"kfp_ui": ui_base(remote)}
    assert run_env("4f1c-77", options) == {"NAVITUNE_KFP_RUN_ID": "4f1c-77",
                                           "NAVITUNE_KFP_RUN_URL": "https://kfp.example:8443/#/runs/details/4f1c-77"}
    assert run_env("4f1c-77", {}) == {"NAVITUNE_KFP_RUN_ID": "4f1c-77"}  # backend=local: the id, no page
    assert run_env("{{$.pipeline_job_uuid}}", options) == {}  # a placeholder nobody resolved is no id
    assert run_env("", options) == {}
