"""``hydra/launcher=kfp`` with ``backend=local``: Hydra's launcher conformance suites, the compiled pipeline
(``compile_only``), one-line errors for bad settings, and a sweep of the real app whose objectives equal the
same trials run by ``process_pool``.

Every job here really runs the compiled component through ``kfp.local`` (a process per job), so these tests
take seconds each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.navitune_kfp.kfp_launcher import KFPLauncher
from tests.fixtures.mariadb import MariaDB

Plugins.instance()  # discovery before the suites run (test order otherwise breaks it)

ROOT = Path(__file__).resolve().parent.parent


def sweep_tag_of(sweep_dir: Path) -> str:
    import hashlib

    return hashlib.sha1(str(sweep_dir.resolve()).encode()).hexdigest()[:6]


def test_runs_and_pipeline_are_named_after_navitune_and_the_study_by_every_sweeper() -> None:
    """Hydra names the job after the module that started it (``__main__`` for ``python -m experiment``): a KFP
    UI of runs named ``__main__-...`` and a pipeline ``main`` says nothing. A study names them; without one,
    navitune does; a job name the user chose (``hydra.job.name``) is kept."""
    from omegaconf import OmegaConf

    from hydra_plugins.navitune_kfp import jobspec

    def cfg(job_name: str, study: str | None = None, env: dict | None = None):
        return OmegaConf.create({"hydra": {"job": {"name": job_name, "env_set": env or {}},
                                           "sweep": {"dir": "/tmp/s"}, "sweeper": {"study_name": study}}})

    for module in ("__main__", "main", ""):
        basic = cfg(module)  # Hydra's basic sweeper, hydra-optuna-sweeper without a study name
        assert jobspec.run_name(basic, 3) == f"navitune-{jobspec.sweep_tag(basic)}-j3"
        assert jobspec.experiment_name(None, basic) == "navitune"
        assert jobspec.pipeline_name(None, jobspec.experiment_name(None, basic)) == "navitune"
    assert jobspec.run_name(cfg("nightly"), 0).startswith("nightly-")
    study = cfg("__main__", "navitune_tokyo_central_tune_week_ml")
    assert jobspec.experiment_name(None, study) == "navitune_tokyo_central_tune_week_ml"
    assert jobspec.pipeline_name(None, jobspec.experiment_name(None, study)) == "navitune-tokyo-central-tune-week-ml"
    trial = cfg("__main__", "s1", {"NAVITUNE_OPTUNA_STUDY": "s1", "NAVITUNE_OPTUNA_TRIAL": "4",
                                   "NAVITUNE_OPTUNA_ATTEMPT": "0"})
    assert jobspec.run_name(trial, 0) == "s1-t4-a0"


def test_discovered_by_hydra() -> None:
    assert KFPLauncher.__name__ in [c.__name__ for c in Plugins.instance().discover(Launcher)]


@pytest.mark.slow  # Hydra's suite on kfp.local: a pipeline run per job
@pytest.mark.parametrize("launcher_name, overrides", [("kfp", ["hydra.launcher.backend=local"])])
class TestKFPLauncherLocal(LauncherTestSuite):
    """Hydra's LauncherTestSuite, every job a kfp.local run of the compiled pipeline."""


@pytest.mark.slow  # Hydra's suite on kfp.local: a pipeline run per job
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "kfp"}, "_self_"]}, ["-m", "hydra.launcher.backend=local"])],
)
class TestKFPLauncherLocalIntegration(IntegrationTestSuite):
    """Hydra's IntegrationTestSuite: real applications (scripts) started as processes."""


# ---------------------------------------------------------------------------------- our own promises
APP = '''
import os, time
import hydra
from omegaconf import DictConfig

@hydra.main(config_path=None, config_name=None)
def task(cfg: DictConfig) -> float:
    mode = cfg.get("mode", "ok")
    if mode == "exit":
        os._exit(3)
    if mode == "raise":
        raise ValueError(f"simulated failure x={cfg.x}")
    if mode == "prune":
        import optuna
        raise optuna.TrialPruned("pruned after day 1")
    start = time.time()
    time.sleep(float(cfg.get("sleep", 0)))
    with open(os.path.join(cfg.out, f"{cfg.x}.times"), "w") as fh:
        fh.write(f"{os.getpid()} {start} {time.time()}")
    return float(cfg.x) ** 2

if __name__ == "__main__":
    task()
'''


def _app_launcher(tmp_path: Path, *overrides: str):
    """The kfp launcher set up (in this process) for the script app above, as Hydra's multirun would."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext

    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "config.yaml").write_text(f"x: 0\nmode: ok\nout: {tmp_path}\n")
    app = tmp_path / "app.py"
    app.write_text(APP)
    import importlib.util

    spec = importlib.util.spec_from_file_location("kfp_test_app", app)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kfp_test_app"] = module
    spec.loader.exec_module(module)
    GlobalHydra.instance().clear()
    init = initialize_config_dir(config_dir=str(conf))
    init.__enter__()
    cfg = compose("config", overrides=["hydra/launcher=kfp", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides],
                  return_hydra_config=True)
    ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks())
    setup_globals()
    launcher = Plugins.instance().instantiate_launcher(config=cfg, hydra_context=ctx,
                                                       task_function=module.task.__wrapped__)
    return launcher, init


@pytest.mark.slow
def test_local_failures_keep_their_type_and_crashes_and_timeouts_fail_alone(tmp_path: Path) -> None:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobStatus

    launcher, init = _app_launcher(tmp_path, "hydra.launcher.n_jobs=3", "hydra.launcher.timeout_s=8")
    try:
        # a module loaded from a file by hand is not importable by name elsewhere: the job loads the file
        assert launcher._core.task_ref == f"file:{(tmp_path / 'app.py').resolve()}:task"
        futures = [launcher.submit(o, i) for i, o in enumerate(
            [["x=2"], ["x=3", "mode=raise"], ["x=4", "mode=prune"], ["x=5", "mode=exit"], ["x=6", "+sleep=60"]])]
        rets = [f.result(timeout=120) for f in futures]
        assert [r.status for r in rets] == [JobStatus.COMPLETED] + [JobStatus.FAILED] * 4
        assert rets[0].return_value == 4.0
        with pytest.raises(ValueError, match="simulated failure x=3"):
            rets[1].return_value
        assert type(rets[2]._return_value).__name__ == "TrialPruned"  # what the sweeper checks
        assert type(rets[3]._return_value).__name__ == "LocalJobDied"
        assert "without a result" in str(rets[3]._return_value)
        assert type(rets[4]._return_value).__name__ == "RunTimedOut"
        assert not (tmp_path / "6.times").exists()  # killed before it finished
    finally:
        launcher.shutdown()
        init.__exit__(None, None, None)
        GlobalHydra.instance().clear()


@pytest.mark.slow
def test_jobs_prepared_ahead_wait_composed_and_take_a_slot_by_themselves(tmp_path: Path) -> None:
    """With n_jobs=1, a second job submitted while the first runs waits composed (``prepared``: the sweeper
    does not count it as running) and starts when the first ends, with no call in between."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra_plugins.navitune_shared.protocol import PreparingLauncher

    launcher, init = _app_launcher(tmp_path, "hydra.launcher.n_jobs=1")
    try:
        assert isinstance(launcher, PreparingLauncher) and launcher.prepare_ahead == 1  # 1 + n_jobs // 4
        first = launcher.submit(["x=7", "+sleep=1"], 0)
        second = launcher.submit(["x=8"], 1)
        assert launcher.prepared in (1, 2)  # the first may not have reached its thread yet
        deadline = time.monotonic() + 120
        while first.running() is False and not first.done():
            assert time.monotonic() < deadline, "the first job never started"
            time.sleep(0.02)
        assert not first.done() and launcher.prepared == 1 and not second.running()
        assert second.result(timeout=120).return_value == 64.0
        assert first.result().return_value == 49.0 and launcher.prepared == 0
        spans = {x: tuple(map(float, (tmp_path / f"{x}.times").read_text().split()[1:])) for x in (7, 8)}
        assert spans[8][0] >= spans[7][1]  # one slot: the second started after the first ended
    finally:
        launcher.shutdown()
        init.__exit__(None, None, None)
        GlobalHydra.instance().clear()


@pytest.mark.slow
def test_n_jobs_runs_at_a_time(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    cmd = [sys.executable, str(app), "-m", "hydra/launcher=kfp", "hydra.launcher.n_jobs=2", f"+out={tmp_path}",
           "+x=1,2,3,4", "+sleep=2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spans = sorted(tuple(map(float, (tmp_path / f"{x}.times").read_text().split()[1:])) for x in (1, 2, 3, 4))
    overlap = lambda a, b: min(a[1], b[1]) - max(a[0], b[0])  # noqa: E731
    assert overlap(spans[0], spans[1]) > 1.0  # two ran side by side
    at_once = max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans)
    assert at_once == 2  # and never three


def _cli(tmp_path: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiment", "-m", "hydra/launcher=kfp", f"paths.outputs={tmp_path / 'outputs'}",
           "+experiment=smoke", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_compile_only_writes_the_pipeline_and_nothing_else(tmp_path: Path) -> None:
    secret = "Sup3r-Secret-Value-91"
    proc = _cli(
        tmp_path, "~search_space", "hydra.launcher.compile_only=true",
        "hydra.launcher.image=us-docker.pkg.dev/acme/sim/navitune-job:0.1.0",
        "hydra.launcher.cpu_request=1", "hydra.launcher.cpu_limit=2", "hydra.launcher.memory_request=1Gi",
        "hydra.launcher.memory_limit=3Gi",
        "++hydra.launcher.node_selector={cloud.google.com/gke-nodepool: simulators}",
        "hydra.launcher.tolerations=[{key: dedicated, operator: Equal, value: simulators, effect: NoSchedule}]",
        "hydra.launcher.secrets=[{secret_name: navitune-db, secret_key_to_env: {password: NAVITUNE_DB_PASSWORD}}]",
        "proxy=cloudsql", "proxy.mode=native", "proxy.instance=acme:asia-northeast1:navitune",
        env={"NAVITUNE_DB_PASSWORD": secret},  # set where the sweep runs: must not travel into the YAML
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "outputs" / "sweeps").glob("*/*/pipeline.yaml")
    assert f"the pipeline is {path}" in proc.stdout + proc.stderr
    text = path.read_text()
    assert secret not in text and secret not in (path.parent / "multirun.yaml").read_text()
    spec, platform = list(yaml.safe_load_all(text))
    container = spec["deploymentSpec"]["executors"]["exec-navitune-job"]["container"]
    assert container["image"] == "us-docker.pkg.dev/acme/sim/navitune-job:0.1.0"
    assert container["resources"]["resourceCpuRequest"] == "1" and container["resources"]["resourceCpuLimit"] == "2"
    assert container["resources"]["resourceMemoryRequest"] == "1Gi"
    assert container["resources"]["resourceMemoryLimit"] == "3Gi"
    assert "pip install" not in " ".join(container["command"])  # kfp is in the image: nothing installed at start
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-navitune-job"]
    assert k8s["nodeSelector"]["labels"] == {"cloud.google.com/gke-nodepool": "simulators"}
    assert k8s["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "simulators",
                                   "effect": "NoSchedule"}]
    assert k8s["secretAsEnv"][0]["secretName"] == "navitune-db"
    assert k8s["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "password", "envVar": "NAVITUNE_DB_PASSWORD"}]
    (sidecar,) = k8s["initContainers"]  # proxy.mode=native: the Cloud SQL proxy as a native sidecar
    assert sidecar["restartPolicy"] == "Always" and "acme:asia-northeast1:navitune" in sidecar["args"]
    # named after navitune, never after the module that started it (python -m experiment: job name __main__)
    assert spec["pipelineInfo"]["name"] == "navitune", spec["pipelineInfo"]
    assert "__main__" not in spec["pipelineInfo"]["description"], spec["pipelineInfo"]
    assert "navitune jobs of the sweep in " in spec["pipelineInfo"]["description"], spec["pipelineInfo"]
    assert f"job 0 (navitune-{sweep_tag_of(path.parent)}-j0) not submitted" in proc.stdout + proc.stderr
    # nothing ran: no job directory, no study, no result rows
    sweep_dir = path.parent
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["multirun.yaml", "pipeline.yaml"]
    assert not (tmp_path / "outputs" / "results.duckdb").exists()


@pytest.mark.slow
def test_compile_only_with_the_optuna_sweeper_creates_no_trial(tmp_path: Path) -> None:
    """The default sweeper (optuna_async) with compile_only: the pipeline is written, the search space checked,
    and no trial is created (jobs that only compile would otherwise "fail" and be retried)."""
    proc = _cli(tmp_path, "hydra.launcher.compile_only=true", "tracking=off", "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no trial is created" in proc.stdout + proc.stderr
    (path,) = (tmp_path / "outputs" / "sweeps").glob("*/*/pipeline.yaml")
    assert not (tmp_path / "outputs" / "optuna").exists()  # the journal storage was never opened
    assert not [p.name for p in path.parent.iterdir() if p.is_dir()]  # no job directory
    bad = _cli(tmp_path, "hydra.launcher.compile_only=true", "tracking=off", "policy.gamma=interval(0.5,0.1x)")
    assert bad.returncode != 0 and "policy.gamma=interval(0.5,0.1x)" in bad.stderr  # still checked


BAD = [
    (["hydra.launcher.backend=remote"], "kfp: invalid hydra.launcher.host=None; allowed: the KFP API URL"),
    (["hydra.launcher.backend=cloud"], "kfp: invalid hydra.launcher.backend='cloud'; allowed: local, remote"),
    (["hydra.launcher.image="], "kfp: invalid hydra.launcher.image=''; allowed: a container image reference"),
    (["hydra.launcher.tolerations=[{key: a, operator: Equal, value: b, efect: NoSchedule}]"],
     "kfp: invalid hydra.launcher.tolerations[0]: unknown key 'efect'; allowed: key, operator, value, effect"),
    (["hydra.launcher.tolerations=[{key: a, value: b, effect: NoRun}]"],
     "kfp: invalid hydra.launcher.tolerations[0].effect='NoRun'; allowed: NoSchedule, PreferNoSchedule, NoExecute"),
    (["hydra.launcher.tolerations=[{key: a, operator: Is}]"],
     "kfp: invalid hydra.launcher.tolerations[0].operator='Is'; allowed: Equal, Exists"),
    (["hydra.launcher.cpu_request=two"], "kfp: invalid hydra.launcher.cpu_request='two'; allowed: a CPU quantity"),
    (["hydra.launcher.memory_limit=1Gx"], "kfp: invalid hydra.launcher.memory_limit='1Gx'; allowed: a memory quantity"),
    (["hydra.launcher.cpu_request=4", "hydra.launcher.cpu_limit=2"],
     "kfp: invalid hydra.launcher.cpu_request='4'; allowed: at most cpu_limit=2"),
    (["hydra.launcher.secrets=[{secret_name: db, secret_key_to_env: {password: 1BAD}}]"],
     "kfp: invalid hydra.launcher.secrets[0].secret_key_to_env.password='1BAD'; allowed: an environment variable name"),
    (["proxy=cloudsql", "proxy.mode=sidecar", "proxy.instance=p:r:i"], "proxy.mode='sidecar'; allowed: none, process, native"),
    (["hydra.launcher.backend=local", "proxy=cloudsql", "proxy.instance=p:r:i", "hydra.launcher.n_jobs=2"],
     "kfp: invalid hydra.launcher.n_jobs=2 with proxy.mode=process and backend=local"),
    (["hydra.launcher.n_jobs=2", "hydra.launcher.prepare_ahead=3"],
     "kfp: invalid hydra.launcher.prepare_ahead=3; allowed: null (1 + n_jobs // 4) or a whole number 0..n_jobs=2"),
    (["hydra.sweeper.storage=mysql+pymysql://navitune:hunter2@db:3306/optuna"],
     "kfp: invalid hydra.sweeper.storage: it holds a password in clear"),
]


@pytest.mark.parametrize("overrides, line", BAD, ids=[b[1].split(";")[0][-40:] for b in BAD])
def test_bad_input_fails_with_one_line_before_anything_happens(tmp_path: Path, overrides: list, line: str) -> None:
    """Remote where possible, against a live FakeKFP: it must receive no request at all."""
    from tools.standins.kfp_api_server import FakeKFP

    with FakeKFP() as server:
        backend = [] if any("backend=" in o for o in overrides) else \
            ["hydra.launcher.backend=remote", f"hydra.launcher.host={server.url}"]
        proc = _cli(tmp_path, *backend, *overrides, "hydra.sweeper.n_trials=2")
        assert server.requests == []
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert line in lines[0]
    assert not (tmp_path / "outputs").exists()  # no sweep dir, no study, nothing compiled


@pytest.mark.slow
def test_a_sweep_of_the_app_equals_the_same_trials_with_process_pool(tmp_path: Path) -> None:
    """+experiment=smoke, 3 trials (the production baseline and two TPE start-up trials, same sampler seed):
    every trial's objective with hydra/launcher=kfp backend=local equals the process_pool one."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    values = {}
    for launcher in ("kfp", "process_pool"):
        work = tmp_path / launcher
        work.mkdir()
        cmd = [sys.executable, "-m", "experiment", "-m", f"hydra/launcher={launcher}",
               f"paths.outputs={work / 'outputs'}", "+experiment=smoke", "hydra.sweeper.n_trials=3",
               "hydra.sweeper.study_name=same", "hydra.launcher.n_jobs=2", "hydra.callbacks.report.enabled=false"]
        if launcher == "kfp":
            cmd.append("hydra.launcher.backend=local")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        journal = work / "outputs" / "optuna" / "studies.journal"
        study = optuna.load_study(study_name="same", storage=JournalStorage(JournalFileBackend(str(journal))))
        trials = study.get_trials(deepcopy=False)
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
        values[launcher] = {tuple(sorted(t.params.items())): t.value for t in trials}
        if launcher == "kfp":  # every trial was a kfp.local run of the one compiled pipeline
            sweep_dir = next((work / "outputs" / "sweeps").glob("*/*"))
            assert (sweep_dir / "pipeline.yaml").exists()
            runs = sorted(p.name for p in (sweep_dir / ".kfp_local").iterdir() if p.is_dir())
            assert runs == ["0-same-t0-a0", "1-same-t1-a0", "2-same-t2-a0"]
            assert len(list(sweep_dir.glob("*/summary.json"))) == 3
    assert values["kfp"] == values["process_pool"]
    assert len(set(values["kfp"].values())) == 3  # three different trials, not one value three times


@pytest.mark.slow
def test_a_local_jobs_mlflow_run_is_tagged_with_its_kfp_run(tmp_path: Path) -> None:
    """The KFP run's id reaches the job (kfp.local resolves the pipeline's ``{{$.pipeline_job_uuid}}``) before
    the task starts, so the trial's MLflow child run (tracking=local, a store under tmp) is tagged with it; a
    local run has no UI page, so no URL tag."""
    from mlflow import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVITUNE_", "MLFLOW_"))}
    cmd = [sys.executable, "-m", "experiment", "-m", "hydra/launcher=kfp", "hydra.launcher.backend=local",
           f"paths.outputs={tmp_path / 'outputs'}", "+experiment=smoke", "hydra.sweeper.n_trials=1",
           "hydra.sweeper.study_name=kfp_tagged", "hydra.callbacks.report.enabled=false", "tracking=local"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kfp_tagged")
    runs = client.search_runs([exp.experiment_id])
    (child,) = [r for r in runs if r.data.tags.get("navitune.role") == "trial"]
    run_id = child.data.tags.get("navitune.kfp_run_id", "")
    assert run_id and "{{" not in run_id  # resolved by the runner, not the placeholder itself
    (log,) = (tmp_path / "outputs" / "sweeps").glob("*/*/.kfp_local/*/kfp.log")
    assert f'"kfp_run_id": "{run_id}"' in log.read_text()  # the id kfp.local gave this job's task
    assert "navitune.kfp_run_url" not in child.data.tags
    assert child.data.tags["navitune.state"] == "COMPLETE"


def test_job_config_pins_the_sweep_time_and_keeps_secrets_as_interpolations(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The job resolves its config later, elsewhere: ${now:} must be the sweep's time (else the job writes to
    another directory), ${oc.env:} must stay an interpolation (the password is read in the job)."""
    import time

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import setup_globals

    from hydra_plugins.navitune_kfp.job import load_config
    from hydra_plugins.navitune_kfp.jobspec import config_yaml

    monkeypatch.setenv("KFP_TEST_PASSWORD", "pa55-w0rd-value")
    (tmp_path / "config.yaml").write_text("db: mysql://u:${oc.env:KFP_TEST_PASSWORD}@h/db\nx: 1\n")
    GlobalHydra.instance().clear()
    setup_globals()
    with initialize_config_dir(config_dir=str(tmp_path)):
        cfg = compose("config", overrides=["hydra.sweep.dir=sweeps/${now:%H-%M-%S-%f}"], return_hydra_config=True)
        expected = str(cfg.hydra.sweep.dir)
        time.sleep(0.01)
        text = config_yaml(cfg)
        assert "${now:" not in text and f"dir: {expected}" in text
        assert "${oc.env:KFP_TEST_PASSWORD}" in text and "pa55-w0rd-value" not in text
        job_cfg = load_config(text)  # as the job reads it: typed hydra node, the secret resolved from its env
        assert str(job_cfg.hydra.sweep.dir) == expected and job_cfg.db == "mysql://u:pa55-w0rd-value@h/db"
    GlobalHydra.instance().clear()


def test_the_dockerfile_builds_the_job_image_from_this_package() -> None:
    """No image can be built here: check what `make image` builds from."""
    text = (ROOT / "Dockerfile").read_text()
    steps = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert steps[0] == "FROM python:3.11-slim"
    run = " ".join(s for s in steps if s.startswith(("RUN", "&&")))
    assert "pip install -e ." in run  # the package, so the pins of pyproject.toml (kfp among them)
    assert "import kfp, kfp.kubernetes, hydra_plugins.navitune_kfp.job, experiment.__main__" in run
    user = [s for s in steps if s.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] not in ("root", "0")
    pins = (ROOT / "pyproject.toml").read_text()
    assert '"kfp==2.17.3"' in pins and '"kfp-kubernetes==2.17.3"' in pins
    assert {".venv", "outputs", ".git"} <= set((ROOT / ".dockerignore").read_text().split())
    makefile = (ROOT / "Makefile").read_text()
    assert "docker build -t $(IMAGE) ." in makefile
    from hydra_plugins.navitune_kfp.kfp_launcher import KFPLauncherConf

    assert f"IMAGE  ?= {KFPLauncherConf.image}" in makefile  # `make image` builds what the launcher runs by default



@pytest.mark.slow
def test_local_jobs_report_to_the_study_through_a_process_proxy(tmp_path: Path, mariadb: MariaDB) -> None:  # noqa: F811
    """proxy=cloudsql proxy.mode=process through this launcher, with real parts: MariaDB stands in for Cloud
    SQL and socat for the Cloud SQL Auth Proxy. The sweeper reaches the database directly; each job can reach
    it only through the proxy it starts (the port comes from hydra.launcher.env, as a pod's environment would
    give it), reports its daily values through it, and leaves no proxy behind."""
    import shutil
    import socket

    import optuna

    if shutil.which("socat") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("socat not found (apt-get install -y socat)")
        pytest.skip("socat not found (apt-get install -y socat)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        proxy_port = int(s.getsockname()[1])
    storage = (f"mysql+pymysql://{mariadb.user}:${{oc.env:KFP_E2E_DB_PASSWORD}}@127.0.0.1:"
               f"${{oc.env:KFP_E2E_DB_PORT}}/{mariadb.database}")
    proc = _cli(
        tmp_path, "hydra.launcher.backend=local", "window.end=2026-06-05",  # two smoke days: one daily report
        "hydra.launcher.n_jobs=1",  # local jobs share this machine's ports: one proxy at a time
        "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=kfp_proxy_e2e", f"hydra.sweeper.storage={storage}",
        "hydra.callbacks.report.enabled=false",  # the champion/challenger report is not under test here
        f"++hydra.launcher.env={{KFP_E2E_DB_PORT: '{proxy_port}'}}",
        "proxy=cloudsql", "proxy.mode=process", "proxy.instance=acme:asia-northeast1:navitune",
        f"proxy.port={proxy_port}", "proxy.start_timeout_s=20",
        f"proxy.command=[socat,'TCP-LISTEN:{{port}},bind=127.0.0.1,reuseaddr,fork','TCP:127.0.0.1:{mariadb.port}']",
        env={"KFP_E2E_DB_PASSWORD": mariadb.password, "KFP_E2E_DB_PORT": str(mariadb.port)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="kfp_proxy_e2e", storage=mariadb.url())
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(len(t.intermediate_values) == 1 for t in trials)  # reported by the job, through the proxy
    sweep_dir = next((tmp_path / "outputs" / "sweeps").glob("*/*"))
    logs = " ".join(p.read_text() for p in sweep_dir.glob(".kfp_local/*/kfp.log"))
    assert mariadb.password not in logs
    with pytest.raises(ConnectionRefusedError):  # the proxies stopped with their jobs: nothing listens there
        socket.create_connection(("127.0.0.1", proxy_port), timeout=2).close()


def test_the_settings_take_their_defaults_from_the_one_schema() -> None:
    """``hydra.launcher`` keys left out (a plain Hydra app, or code that builds the launcher itself) take the
    schema's defaults, not a second set (``cpu_request`` was "1" in the schema and None in the checked settings)."""
    from dataclasses import fields

    from hydra_plugins.navitune_kfp.settings import KFPLauncherConf, check

    settings, conf = check({}), KFPLauncherConf()
    for f in fields(KFPLauncherConf):
        if f.name in ("_target_", "tolerations", "secrets"):  # checked into tuples of typed entries
            continue
        if f.name == "prepare_ahead":  # null in the schema means "computed from n_jobs"
            assert conf.prepare_ahead is None and settings.prepare_ahead == 1 + conf.n_jobs // 4
            continue
        assert getattr(settings, f.name) == getattr(conf, f.name), f.name
    assert settings.cpu_request == "1" and settings.memory_limit == "2Gi"


def test_the_task_of_an_editable_install_is_importable_by_name_from_any_directory(tmp_path: Path) -> None:
    """``pip install -e .`` puts navitune behind its own import finder, not on sys.path: a remote job must still
    get ``experiment.task:task`` (not a file path outside the working directory, refused for backend=remote)."""
    import subprocess
    import sys

    code = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', %r)]\n"
            "from experiment.task import task\n"
            "from hydra_plugins.navitune_kfp.jobspec import remote_reference, task_reference\n"
            "print(remote_reference(task_reference(task), task))" % str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "experiment.task:task"
