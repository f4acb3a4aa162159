"""``navitune submit`` and ``navitune schedule``: the compiled driver pipeline, the refusals, and the API calls.

* Compile level (``--dry-run --output``): the driver task's command (the sweep's multirun command, or ``retune
  --as-of <scheduled date>``, with the remote kfp launcher against the in-cluster API), its retry policy, the Cloud
  SQL proxy (native sidecar, or the process the task starts), secrets by reference and no secret value in the
  YAML, the schedule-time placeholder.
* Refusals: one line, exit 2, no request to the API and nothing written.
* API: against the stand-in KFP API (``tools/standins/kfp_api_server.FakeKFP`` with its recurring runs,
  ``kfp_recurring``), through the real ``kfp.Client``: the driver run and its URL, one driver per sweep, a retried
  create without a duplicate, schedules created / listed / paused / resumed / deleted, one per region and
  scenario, and a schedule fired at a time whose run's task, started as the pod would start it, runs
  ``retune --as-of`` that day.
* The pod's entry (``driver_task``): the scheduled date, SIGTERM passed on to the real sweeper as its Ctrl-C,
  the proxy it starts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from experiment.cluster import schedule, submit
from experiment.cluster.command import key_of
from experiment.cluster.plan import LOOPBACK_ESCAPE
from tools.standins.kfp_api_server import FakeKFP
from tools.standins.kfp_recurring import recurring, task_command
from hydra_plugins.navitune_kfp import driver_task
from hydra_plugins.navitune_kfp.driver import DATE_TOKEN, TASK_MODULE
from hydra_plugins.navitune_kfp.recurring import TriggerError, normalize_cron, parse_every
from tests.fixtures.mlflow import MLflowProcess
from tests.fixtures.services import free_port

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-5f1d9c2e"
IMAGE = "registry.example/acme/navitune-job:0.1.0"
STORAGE = "hydra.sweeper.storage=mysql+pymysql://navitune:${oc.env:NAVITUNE_DB_PASSWORD}@127.0.0.1:3306/optuna"
SECRETS = ("hydra.launcher.secrets=[{secret_name: navitune-db, secret_key_to_env: {password: NAVITUNE_DB_PASSWORD}},"
           " {secret_name: navitune-mlflow, secret_key_to_env: {password: MLFLOW_PW}}]")
DRIVER_HOST = "http://ml-pipeline.kubeflow:8888"


@pytest.fixture
def cluster_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean working directory (nothing may be written there) and the secrets in the environment only."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAVITUNE_DB_PASSWORD", CANARY)
    monkeypatch.setenv("MLFLOW_PW", CANARY)
    monkeypatch.setenv("LOCAL_ONLY_PW", CANARY)  # set here, not given to the pod by hydra.launcher.secrets
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(LOOPBACK_ESCAPE, "1")  # base()'s MLflow is on this machine: see test_loopback_mlflow_...
    return tmp_path


@pytest.fixture
def server() -> Iterator[FakeKFP]:
    with FakeKFP() as fake:
        yield fake


def base(host: str, mlflow_port: int, *extra: str) -> list[str]:
    """A complete command line for the cluster: image, host, study database, MLflow server, secrets."""
    return ["-m", f"hydra.launcher.host={host}", f"hydra.launcher.image={IMAGE}", STORAGE, SECRETS,
            "tracking=server", f"tracking.uri=http://navi:${{oc.env:MLFLOW_PW}}@127.0.0.1:{mlflow_port}", *extra]


def run_cli(main: Any, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def docs_of(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def container(docs: list[dict]) -> dict:
    (executor,) = docs[0]["deploymentSpec"]["executors"].values()
    return executor["container"]


def the_task(docs: list[dict]) -> dict:
    (task,) = docs[0]["root"]["dag"]["tasks"].values()
    return task


def when(rfc3339: str) -> dt.datetime:
    return dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def after_dashdash(args: list[str]) -> list[str]:
    return args[args.index("--") + 1:]


# ------------------------------------------------------------------------------------- compile level
def test_submit_compiles_the_sweep_as_one_retried_task_with_sidecar_and_secrets_by_name(
        cluster_env: Path, closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    out = cluster_env / "driver.yaml"
    code, stdout, err = run_cli(submit.main, [
        *base("http://localhost:8080", closed_port, "proxy=cloudsql", "proxy.mode=native",
              "proxy.instance=acme:asia-northeast1:navitune", "window=rolling", "region=coquimbo"),
        "--dry-run", "--output", str(out), "--retries", "4", "--retry-backoff-s", "30", "--timeout", "12h"], capsys)
    assert code == 0, err
    assert "nothing submitted" in stdout
    docs = docs_of(out)
    c = container(docs)
    assert c["image"] == IMAGE
    assert c["command"] == ["python", "-m", TASK_MODULE]
    cmd = after_dashdash(c["args"])
    assert cmd[:4] == ["python", "-m", "experiment", "-m"]
    assert "hydra/launcher=kfp" in cmd and "hydra.launcher.backend=remote" in cmd
    assert f"hydra.launcher.host={DRIVER_HOST}" in cmd
    assert "hydra.launcher.host=http://localhost:8080" not in cmd  # this machine's address stays here
    assert "hydra.launcher.ui_host=http://localhost:8080" in cmd  # run links open where the user looks
    assert STORAGE in cmd and SECRETS in cmd and "region=coquimbo" in cmd
    today = dt.date.today().isoformat()
    assert f"window.as_of={today}" in cmd  # pinned: a retried driver resumes the same study
    # a dead driver pod is started again
    assert the_task(docs)["retryPolicy"] == {"maxRetryCount": 4, "backoffDuration": "30s", "backoffFactor": 2.0,
                                             "backoffMaxDuration": "3600s"}
    assert "inputs" not in the_task(docs)  # a submitted sweep has no schedule time
    # the proxy as a native sidecar, and the secret by name, in the platform spec
    (k8s,) = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    (sidecar,) = k8s["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["args"][0] == "acme:asia-northeast1:navitune"
    assert k8s["secretAsEnv"][0]["secretName"] == "navitune-db"
    assert k8s["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "password", "envVar": "NAVITUNE_DB_PASSWORD"}]
    assert int(k8s["activeDeadlineSeconds"]) == 12 * 3600  # --timeout: the driver cannot run forever
    # the task waits for the sidecar's port (its proxy settings travel without any secret)
    proxy = json.loads(c["args"][c["args"].index("--proxy") + 1])
    assert proxy["mode"] == "native" and proxy["port"] == 3306
    text = out.read_text()
    assert CANARY not in text and CANARY not in stdout + err
    assert "${oc.env:NAVITUNE_DB_PASSWORD}" in text and "${oc.env:MLFLOW_PW}" in text  # references, as typed
    assert not (cluster_env / "outputs").exists()


def test_schedule_compiles_a_retune_cycle_dated_by_the_schedule_time(
        cluster_env: Path, closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    out = cluster_env / "schedule.yaml"
    code, stdout, err = run_cli(schedule.main, [
        "create", "--cron", "0 3 * * MON", *base("http://localhost:8080", closed_port, "proxy=cloudsql",
                                                 "proxy.instance=acme:asia-northeast1:navitune"),
        "--dry-run", "--output", str(out)], capsys)
    assert code == 0, err
    assert "navitune-retune-tokyo_central-drifting" in stdout
    docs = docs_of(out)
    task, c = the_task(docs), container(docs)
    # KFP resolves the placeholder when the scheduled run starts; the task turns it into the date
    assert task["inputs"]["parameters"]["schedule_time"]["runtimeValue"]["constant"] == \
        "{{$.pipeline_job_schedule_time_utc}}"
    at = c["args"].index("--schedule-time")
    assert c["args"][at + 1] == "{{$.inputs.parameters['schedule_time']}}"
    cmd = after_dashdash(c["args"])
    assert cmd[:6] == ["python", "-m", "experiment", "retune", "--as-of", DATE_TOKEN]
    assert not any(a.startswith("window.as_of=") for a in cmd)
    assert f"hydra.launcher.host={DRIVER_HOST}" in cmd
    assert task["retryPolicy"]["maxRetryCount"] == 3
    # mode process: no sidecar; the task starts the proxy itself
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert all("initContainers" not in e for e in platform.values())
    (k8s,) = platform.values()
    assert int(k8s["activeDeadlineSeconds"]) == 7 * 86400  # default deadline: the period (weekly), no overlap
    assert json.loads(c["args"][c["args"].index("--proxy") + 1])["mode"] == "process"
    assert CANARY not in out.read_text()
    assert "warning: cannot check region tokyo_central's champion" in err  # MLflow down here: a warning only
    assert CANARY not in err


@pytest.mark.slow
def test_schedule_create_refuses_a_region_without_champion(
        cluster_env: Path, tmp_path: Path, server: FakeKFP, capsys: pytest.CaptureFixture[str]) -> None:
    from experiment.registry.resolver import cached_champion, forget

    # a server of its own: the session's shared one holds other tests' champions of every region
    mlflow = MLflowProcess(tmp_path / "mlflow", free_port())
    (tmp_path / "mlflow").mkdir()
    mlflow.start()
    try:
        forget()
        assert cached_champion(mlflow.uri, "coquimbo") is None
        code, out, err = run_cli(schedule.main, [
            "create", "--cron", "0 3 * * MON", *base(server.url, mlflow.port, "region=coquimbo"), "--dry-run"],
            capsys)
    finally:
        mlflow.stop()
        forget()
    assert code == 2, (out, err)
    assert "region coquimbo has no champion" in err and "create it with: navitune champion init region=coquimbo" \
        in err and len(err.strip().splitlines()) == 1, err
    assert CANARY not in out + err and server.requests == []


def test_a_triggers_period_is_the_smallest_gap_between_two_fires() -> None:
    from hydra_plugins.navitune_kfp.recurring import period_s

    assert period_s(normalize_cron("0 3 * * MON")) == 7 * 86400
    assert period_s(normalize_cron("0 3 * * MON,THU")) == 3 * 86400  # Mon -> Thu, not Thu -> Mon
    assert period_s(normalize_cron("30 */6 * * *")) == 6 * 3600
    assert period_s("@daily") == 86400
    assert period_s(every_s=parse_every("12h")) == 12 * 3600


def test_timeout_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        submit.main(["--timeout", "10s", "-m"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------------------------ refusals
REFUSED = [
    ("submit", ["tracking=local", "~tracking.uri"], "invalid tracking=local"),
    ("submit", ["hydra.sweeper.storage=journal://outputs/optuna/s.journal"], "hydra.sweeper.storage="),
    ("submit", ["hydra.sweeper.storage=sqlite:///outputs/s.db"], "hydra.sweeper.storage="),
    ("submit", ["hydra.launcher.image=navitune-job:latest"], "invalid hydra.launcher.image='navitune-job:latest'"),
    ("submit", ["~hydra.launcher.host"], "hydra.launcher.host"),
    ("submit", ["region=atlantis"], "unknown region 'atlantis'"),
    ("submit", ["hydra/launcher=process_pool"], "invalid hydra/launcher='process_pool'"),
    ("submit", ["hydra.launcher.backend=local"], "invalid hydra.launcher.backend='local'"),
    ("submit", ["~tracking.uri"], "missing tracking.uri"),
    ("submit", ["hydra.sweeper.storage=mysql+pymysql://navitune:hunter2@db/optuna"], "password in clear"),
    ("submit", ["--driver-host", "ml-pipeline:8888"], "invalid --driver-host"),
    ("schedule", ["tracking=off", "~tracking.uri"], "invalid tracking=off"),
    ("schedule", ["window.as_of=2026-12-01"], "invalid window.as_of"),
    ("schedule", ["window=tune_week"], "invalid window='tune_week'"),
    ("schedule", ["region=coquimbo,ring_city"], "invalid region="),
    ("schedule", ["--cron", "61 3 * * *"], "invalid --cron '61 3 * * *'"),
    ("schedule", ["--cron", "0 3 * *"], "invalid --cron '0 3 * *'"),
    ("schedule", ["--cron", "0 3 * * MON", "--every", "7d"], "give one of --cron"),
    ("schedule", ["--every", "10s"], "invalid --every '10s'"),
    ("submit", ["+notify=slack"], "hydra.callbacks.slack.webhook_env reads environment variable "
                                  "NAVITUNE_SLACK_WEBHOOK_URL, which the driver pod does not have"),
    ("submit", ["tracking.uri=http://navi:${oc.env:LOCAL_ONLY_PW}@mlflow.kubeflow:5000"], "secret_key_to_env"),
    ("schedule", ["hydra.sweeper.storage=mysql+pymysql://u:${oc.env:LOCAL_ONLY_PW}@127.0.0.1:3306/optuna"],
     "hydra.sweeper.storage reads environment variable LOCAL_ONLY_PW"),
    ("schedule", ["hydra.sweeper.study_name=mine"], "retune sets hydra.sweeper.study_name itself"),
    ("schedule", ["hydra.sweep.dir=/x"], "retune sets hydra.sweep.dir itself"),
    ("schedule", ["window.seed=3"], "retune sets window.seed itself"),
    ("schedule", ["+hydra.callbacks.report.enabled=false"], "retune sets hydra.callbacks.report.enabled itself"),
]


@pytest.mark.parametrize("kind,extra,expected", REFUSED, ids=[f"{k}:{' '.join(e)}" for k, e, _ in REFUSED])
def test_bad_settings_are_one_line_before_anything_is_submitted(
        kind: str, extra: list[str], expected: str, cluster_env: Path, closed_port: int, server: FakeKFP,
        capsys: pytest.CaptureFixture[str]) -> None:
    replaced = {key_of(e) for e in extra if not e.startswith("-")}  # ~key: left out
    args = [a for a in base(server.url, closed_port) if key_of(a) not in replaced]
    args += [e for e in extra if not e.startswith("~")]
    if kind == "schedule":
        args = ["create", *([] if any(e in ("--cron", "--every") for e in extra) else ["--cron", "0 3 * * MON"]),
                *args]
        main = schedule.main
    else:
        main = submit.main
    code, out, err = run_cli(main, args, capsys)
    assert code == 2, (out, err)
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert CANARY not in out + err and "hunter2" not in out + err
    assert server.requests == []  # nothing reached the API
    assert not (cluster_env / "outputs").exists()


LOOPBACK = [("submit", "tracking.uri=http://127.0.0.1:5000", None),
            ("schedule", "tracking.uri=http://localhost:5000", None),
            ("submit", "tracking.uri='http://navi:${oc.env:MLFLOW_PW}@[::1]:5000'", None),
            ("schedule", "~tracking.uri", "http://127.0.0.1:5000")]


@pytest.mark.parametrize("kind,uri,env", LOOPBACK)
def test_loopback_mlflow_is_refused(kind: str, uri: str, env: str | None, cluster_env: Path, closed_port: int,
                                    server: FakeKFP, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A loopback MLflow URI, written or this machine's MLFLOW_TRACKING_URI, is the driver pod's own loopback."""
    monkeypatch.delenv(LOOPBACK_ESCAPE)
    if env:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    args = [a for a in base(server.url, closed_port) if key_of(a) != "tracking.uri"]
    args += [] if uri.startswith("~") else [uri]
    main = schedule.main if kind == "schedule" else submit.main
    code, out, err = run_cli(main, ["create", "--cron", "0 3 * * MON", *args] if kind == "schedule" else args, capsys)
    assert code == 2, (out, err)
    assert "the driver pod's own loopback" in err and len(err.strip().splitlines()) == 1, err
    assert CANARY not in out + err and server.requests == []


def test_tracking_uri_as_written_or_this_machines_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``tracking.uri`` written anywhere (command line, preset) goes to the pod as written; left to its default
    it would be the pod's loopback, so this machine's ``MLFLOW_TRACKING_URI`` is passed on, unless it holds a
    secret (refused without showing it)."""
    from experiment.cluster.plan import ClusterError, check_tracking, compose_sweep

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    written = compose_sweep(["tracking=server", "tracking.uri=http://mlflow.kubeflow:5000"])
    assert check_tracking("submit", written) == []
    default = compose_sweep(["tracking=server"])
    with pytest.raises(ClusterError, match="missing tracking.uri"):
        check_tracking("schedule", default)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert check_tracking("submit", compose_sweep(["tracking=server"])) == ["tracking.uri=http://mlflow.example:5000"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://navi:{CANARY}@mlflow.example:5000")
    with pytest.raises(ClusterError, match="holds a secret") as err:
        check_tracking("submit", compose_sweep(["tracking=server"]))
    assert CANARY not in str(err.value)
    assert check_tracking("submit", compose_sweep(["tracking=off"])) == []


# ------------------------------------------------------------------------------- API: submit
def test_submit_creates_one_driver_run_prints_its_url_and_refuses_a_second(
        cluster_env: Path, closed_port: int, server: FakeKFP, capsys: pytest.CaptureFixture[str]) -> None:
    server.fail("POST", r"/apis/v2beta1/runs", 503)  # a transient failure: retried, not doubled
    args = [*base(server.url, closed_port, "hydra.launcher.api_backoff_s=0.01"), "--driver-host", server.url]
    code, out, err = run_cli(submit.main, args, capsys)
    assert code == 0, err
    (run,) = server.runs.values()
    url = re.search(r"(http://\S+)$", out.strip()).group(1)  # type: ignore[union-attr]
    assert url == f"{server.url}/#/runs/details/{run['run_id']}"
    exp = server.experiments[run["experiment_id"]]
    assert exp["display_name"] == "navitune_tokyo_central_tune_week_ml"  # the study's, beside its trial runs
    assert run["display_name"] == "navitune_tokyo_central_tune_week_ml-driver"
    assert len(server.attempts("POST", r"/apis/v2beta1/runs")) == 2
    spec = run["pipeline_spec"]["pipeline_spec"]
    (executor,) = spec["deploymentSpec"]["executors"].values()
    cmd = after_dashdash(executor["container"]["args"])
    assert f"hydra.launcher.host={server.url}" in cmd and cmd[3] == "-m"
    assert CANARY not in json.dumps([r.body for r in server.requests]) + out + err
    # the first driver is still PENDING: a second submit is refused, nothing created
    code, out, err = run_cli(submit.main, args, capsys)
    assert code == 2 and "still PENDING" in err and len(err.strip().splitlines()) == 1
    assert len(server.runs) == 1
    run["state"] = "SUCCEEDED"  # once it is over, the sweep can be submitted again
    code, out, err = run_cli(submit.main, args, capsys)
    assert code == 0, err
    assert len(server.runs) == 2


def test_submit_with_the_api_down_is_one_line_exit_1(cluster_env: Path, closed_port: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    code, _, err = run_cli(submit.main, [*base(host, closed_port, "hydra.launcher.api_retries=0")], capsys)
    assert code == 1
    assert "cannot use the KFP API" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- API: schedule
def schedule_args(server: FakeKFP, closed_port: int, *extra: str) -> list[str]:
    return [*base(server.url, closed_port, *extra), "--driver-host", server.url]


@pytest.mark.slow
def test_schedule_create_list_pause_resume_delete(cluster_env: Path, closed_port: int, server: FakeKFP,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = schedule_args(server, closed_port)
    code, out, err = run_cli(schedule.main, ["create", "--cron", "0 3 * * MON", *args], capsys)
    assert code == 0, err
    assert "navitune-retune-tokyo_central-drifting created (cron 0 0 3 * * MON, max_concurrency 1, no catch-up)" \
        in out
    (req,) = server.calls("POST", r"/apis/v2beta1/recurringruns")
    body = req.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * MON"}}  # KFP's six fields, seconds first
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert server.experiments[body["experiment_id"]]["display_name"] == "navitune-retune-tokyo_central-drifting"
    assert CANARY not in json.dumps(body)
    # one schedule per region and scenario
    code, _, err = run_cli(schedule.main, ["create", "--every", "7d", *args], capsys)
    errors = [line for line in err.strip().splitlines() if "warning: cannot check" not in line]  # MLflow is down
    assert code == 2 and "has a schedule already" in err and len(errors) == 1, err
    code, out, err = run_cli(schedule.main, ["create", "--every", "7d", *args, "region=coquimbo",
                                             "scenario=stationary"], capsys)
    assert code == 0, err
    periodic = server.calls("POST", r"/apis/v2beta1/recurringruns")[-1].body["trigger"]["periodic_schedule"]
    assert int(periodic["interval_second"]) == 7 * 86400
    # list
    code, out, err = run_cli(schedule.main, ["list", "--json", *args], capsys)
    assert code == 0, err
    listed = {s["name"]: s for s in json.loads(out)["schedules"]}
    assert set(listed) == {"navitune-retune-tokyo_central-drifting", "navitune-retune-coquimbo-stationary"}
    assert listed["navitune-retune-coquimbo-stationary"]["trigger"] == "every 604800 s"
    assert all(s["enabled"] and s["no_catchup"] for s in listed.values())
    # pause: the scheduler starts nothing; resume: it does again
    rec_id = listed["navitune-retune-tokyo_central-drifting"]["id"]
    code, out, err = run_cli(schedule.main, ["pause", *args], capsys)
    assert code == 0 and "paused" in out, err
    assert server.recurring.items[rec_id]["status"] == "DISABLED"  # type: ignore[attr-defined]
    assert recurring(server).fire(rec_id, dt.datetime(2026, 12, 7, 3, tzinfo=dt.timezone.utc)) is None
    code, out, err = run_cli(schedule.main, ["resume", *args], capsys)
    assert code == 0 and "resumed" in out, err
    assert recurring(server).fire(rec_id, dt.datetime(2026, 12, 7, 3, tzinfo=dt.timezone.utc)) is not None
    # delete
    code, out, err = run_cli(schedule.main, ["delete", *args], capsys)
    assert code == 0 and "deleted" in out, err
    code, out, _ = run_cli(schedule.main, ["list", *args], capsys)
    assert "navitune-retune-tokyo_central-drifting" not in out and "navitune-retune-coquimbo-stationary" in out
    code, _, err = run_cli(schedule.main, ["pause", *args], capsys)
    assert code == 2 and "no schedule navitune-retune-tokyo_central-drifting" in err


def test_a_fired_schedule_runs_retune_as_of_its_scheduled_date_one_at_a_time(
        cluster_env: Path, closed_port: int, server: FakeKFP, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(schedule.main, ["create", "--cron", "0 3 * * MON",
                                           *schedule_args(server, closed_port)], capsys)
    assert code == 0, err
    (rec_id,) = recurring(server).items
    monday = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.timezone.utc)
    run = recurring(server).fire(rec_id, monday)
    assert run is not None and when(run["scheduled_at"]) == monday
    assert run["recurring_run_id"] == rec_id
    # max_concurrency 1: the next time waits while this cycle runs
    assert recurring(server).fire(rec_id, monday + dt.timedelta(days=7)) is None
    # the pod's command, as the backend starts it; `python` is a stand-in that records what it was asked to run
    argv = task_command(server, run)
    assert argv[:3] == ["python", "-m", TASK_MODULE]
    bin_dir = cluster_env / "bin"
    bin_dir.mkdir()
    record = cluster_env / "argv.json"
    (bin_dir / "python").write_text(f"#!{sys.executable}\nimport json, sys\n"
                                    f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": f"{ROOT / 'launchers'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=60,
                          cwd=cluster_env)
    assert proc.returncode == 0, proc.stderr
    ran = json.loads(record.read_text())
    assert ran[:5] == ["-m", "experiment", "retune", "--as-of", "2026-12-07"]
    assert f"hydra.launcher.host={server.url}" in ran
    # once the cycle is over the next one starts; catching up after a pause fires only the latest time
    run["state"] = "SUCCEEDED"
    missed = [monday + dt.timedelta(days=7 * k) for k in (1, 2, 3)]
    (latest,) = recurring(server).catch_up(rec_id, missed)
    assert when(latest["scheduled_at"]) == missed[-1]


def test_the_stand_in_refuses_what_kfp_refuses(server: FakeKFP) -> None:
    import kfp_server_api
    from kfp_server_api.exceptions import ApiException

    from hydra_plugins.navitune_kfp.recurring import Session
    from hydra_plugins.navitune_kfp.settings import check

    session = Session(check({"backend": "remote", "host": server.url, "api_retries": 0}))
    exp_id = session.experiment_for("x", "")
    api = session.client._recurring_run_api
    for trigger, concurrency in (({}, 1), ({"cron_schedule": {"cron": "0 61 * * * *"}}, 1),
                                 ({"periodic_schedule": {"interval_second": 60}}, 11)):
        body = kfp_server_api.V2beta1RecurringRun(display_name="x", experiment_id=exp_id, pipeline_spec={"a": 1},
                                                  trigger=trigger, max_concurrency=concurrency)
        with pytest.raises(ApiException) as err:
            api.recurring_run_service_create_recurring_run(recurring_run=body)
        assert err.value.status == 400
    assert recurring(server).items == {}


# --------------------------------------------------------------------------------- the pod's entry
def test_schedule_date_is_the_utc_day_of_the_scheduled_time() -> None:
    assert driver_task.schedule_date("2026-12-07T03:00:00Z") == "2026-12-07"
    assert driver_task.schedule_date("2026-12-06T23:30:00-05:00") == "2026-12-07"
    assert driver_task.schedule_date("2026-12-07T03:00:00.123456Z") == "2026-12-07"
    noon = dt.datetime(2026, 12, 9, 12, tzinfo=dt.timezone.utc)
    for unresolved in ("", "{{$.pipeline_job_schedule_time_utc}}"):  # started by hand: today
        assert driver_task.schedule_date(unresolved, now=noon) == "2026-12-09"
    with pytest.raises(driver_task.DriverTaskError, match="invalid --schedule-time 'monday'"):
        driver_task.schedule_date("monday")
    assert driver_task.resolve_command(["a", "--as-of", DATE_TOKEN], "2026-12-07T03:00:00Z") == \
        ["a", "--as-of", "2026-12-07"]
    assert driver_task.resolve_command(["a", "b"], "garbage") == ["a", "b"]  # no date asked for: not parsed


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_to_the_driver_stops_the_real_sweep_without_running_trials(tmp_path: Path) -> None:
    """An evicted pod gets SIGTERM (to the driver task only, as the kubelet sends it): the real sweep under it
    stops as on Ctrl-C, so no trial is left RUNNING, and the task fails (KFP retries it)."""
    from optuna.trial import TrialState

    from tests.test_optuna_async_sweeper import command, journal, journal_trials, states

    store = tmp_path / "study.journal"
    sweep = command("sphere", tmp_path / "sweep", journal(store), "hydra.sweeper.n_trials=200", "sleep_s=1.0")
    proc = subprocess.Popen([sys.executable, "-m", TASK_MODULE, "--", *sweep], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "launchers")}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(t.state == TrialState.RUNNING for t in journal_trials(store, "sphere")), 60,
                 "a running trial")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0, err
    trials = journal_trials(store, "sphere")
    c = states(trials)
    assert c[TrialState.RUNNING] == 0 and c[TrialState.COMPLETE] < 200, (c, err[-2000:])
    assert any(t.user_attrs.get("navitune:stopped") for t in trials), (c, err[-2000:])


def test_proxy_process_is_up_for_the_whole_command_and_stopped_after(tmp_path: Path) -> None:
    """Mode process: the driver task starts the proxy before the sweeper (which reaches the study through it)
    and stops it after."""
    port = free_port()
    listener = (f"import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('127.0.0.1', {port})); s.listen()\nwhile True:\n    c, _ = s.accept(); c.close()\n")
    proxy = {"mode": "process", "instance": "acme:asia-northeast1:navitune", "port": port,
             "command": [sys.executable, "-c", listener], "start_timeout_s": 20}
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).close(); print('reached')"
    proc = subprocess.run([sys.executable, "-m", TASK_MODULE, "--proxy", json.dumps(proxy), "--",
                           sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(ROOT / "launchers")},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "reached" in proc.stdout
    with socket.socket() as s:  # the proxy is gone: its port is free again
        assert s.connect_ex(("127.0.0.1", port)) != 0


# ------------------------------------------------------------------------------------------ triggers
@pytest.mark.parametrize("expr,expected", [
    ("0 3 * * MON", "0 0 3 * * MON"), ("30 2 1 */2 *", "0 30 2 1 */2 *"), ("0 0 9 ? * 2-6", "0 0 9 ? * 2-6"),
    ("  15 4  * * 1,3,5 ", "0 15 4 * * 1,3,5"), ("@weekly", "@weekly"), ("0 0 1 JAN-MAR *", "0 0 0 1 JAN-MAR *"),
])
def test_cron_is_sent_as_kfps_six_fields(expr: str, expected: str) -> None:
    assert normalize_cron(expr) == expected


@pytest.mark.parametrize("expr", ["", "0 3 * *", "60 * * * *", "0 24 * * *", "0 3 0 * *", "0 3 * 13 *",
                                  "0 3 * * 7", "0 3 * * FUN", "*/0 * * * *", "5-1 * * * *", "? * * * *",
                                  "@every 1h", "0 0 0 0 3 * * *"])
def test_bad_cron_is_refused(expr: str) -> None:
    with pytest.raises(TriggerError):
        normalize_cron(expr)


def test_intervals() -> None:
    assert parse_every("7d") == 604800 and parse_every("12h") == 43200 and parse_every("90m") == 5400
    assert parse_every("1w") == 604800 and parse_every("3600") == 3600
    for bad in ("10s", "400d", "7 days", "-1d", "d"):
        with pytest.raises(TriggerError):
            parse_every(bad)


def test_navitune_dispatches_submit_and_schedule(tmp_path: Path) -> None:
    """The console script's entry (``python -m experiment submit|schedule``) reaches these commands."""
    for args in (["submit", "--retries", "99"], ["schedule", "list", "region=atlantis"]):
        proc = subprocess.run([sys.executable, "-m", "experiment", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert ("--retries" in proc.stderr) if args[0] == "submit" else ("unknown region 'atlantis'" in proc.stderr)
