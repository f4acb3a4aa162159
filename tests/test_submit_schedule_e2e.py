"""``navitune submit`` and ``navitune schedule`` end to end, through the executing KFP stand-in.

The driver pipeline is run as the backend would run it (``tools/standins/kfp_executor.py``): its task (the
driver task around the sweep's command) in the job image (this checkout), the DB password from the stand-in's
secret store, the remote kfp launcher inside it submitting the trial runs to the same API, which runs them too;
the studies in MariaDB.

* ``submit``: the sweep ends with exactly ``n_trials`` finished trials and no trial run submitted twice; with the
  driver's pod killed mid-sweep, KFP's retry policy starts a new driver, which resumes the study (the trials in
  flight re-attached by their run names) and ends it the same way.
* ``schedule``: a recurring run fired at two Thursdays a week apart runs two ``navitune retune`` cycles, dated by
  the scheduled times, the champion in an MLflow server of the test's own. The champion starts as a poor policy
  and the first cycle's search includes known-good parameters, so the first cycle promotes them; the second
  cycle's baseline (its trial 0) is then that new champion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from experiment.cluster import schedule, submit
from tools.standins.kfp_api_server import FakeKFP
from experiment.cluster.plan import LOOPBACK_ESCAPE
from tools.standins.kfp_executor import Executor, Registry, job_image
from tools.standins.kfp_recurring import recurring
from tests.fixtures.mariadb import MariaDB
from tests.fixtures.mlflow import MLflowProcess
from tests.fixtures.services import free_port, unavailable, wait_until
from tests.test_registry import POOR, SMOKE_SCALE, register_poor

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "registry.example/acme/navitune-job:standin"
SECRETS = "hydra.launcher.secrets=[{secret_name: navitune-db, secret_key_to_env: {password: NAVITUNE_DB_PASSWORD}}]"


def storage(db: MariaDB) -> str:
    return (f"hydra.sweeper.storage=mysql+pymysql://{db.user}:${{oc.env:NAVITUNE_DB_PASSWORD}}"
            f"@127.0.0.1:{db.port}/{db.database}")


def needs_socat() -> None:
    if shutil.which("socat") is None:
        unavailable("executing KFP stand-in", "socat not found (apt-get install -y socat)")


# ------------------------------------------------------------------------------------------- submit
N_TRIALS = 3


def finished_trials(db: MariaDB, study: str) -> list[Any]:
    import optuna
    from optuna.trial import TrialState

    try:
        trials = optuna.load_study(study_name=study, storage=db.url()).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


@pytest.mark.slow
@pytest.mark.parametrize("kill_driver", [False, True], ids=["clean", "driver-killed"])
def test_submit_runs_the_whole_sweep_in_the_cluster(kill_driver: bool, tmp_path: Path, mariadb: MariaDB,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    needs_socat()
    study = "submit_" + hashlib.sha1(f"{kill_driver}{tmp_path}".encode()).hexdigest()[:8]
    registry = Registry()
    registry.add(job_image(IMAGE, workdir=tmp_path))
    executor = Executor(registry, secrets={"navitune-db": {"password": mariadb.password}}, root=tmp_path / "pods",
                        retry_backoff_scale=0.02)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAVITUNE_DB_PASSWORD", mariadb.password)  # this machine's checks resolve it too
    with FakeKFP(executor=executor) as server:
        code = submit.main([
            "-m", f"hydra.launcher.host={server.url}", f"hydra.launcher.image={IMAGE}", storage(mariadb), SECRETS,
            "tracking=off", "+experiment=smoke", f"hydra.sweeper.study_name={study}",
            f"hydra.sweeper.n_trials={N_TRIALS}", "hydra.sweeper.n_jobs=2", "hydra.launcher.n_jobs=2",
            "hydra.launcher.poll_interval=0.3", "hydra.callbacks.report.enabled=false",
            "--driver-host", server.url, "--retry-backoff-s", "1"])
        out = capsys.readouterr()
        assert code == 0, out.err
        driver_id = re.search(r"/#/runs/details/(\S+)$", out.out.strip()).group(1)  # type: ignore[union-attr]
        if kill_driver:  # mid-sweep: one trial done, the sweeper still going
            wait_until(lambda: len(finished_trials(mariadb, study)) >= 1, 300, "a first finished trial", interval_s=0.2)
            assert executor.kill(driver_id, "the node was preempted")
            # no trial is told to the study while no sweeper runs: the new driver has work left
            assert len(finished_trials(mariadb, study)) < N_TRIALS
        driver = server.wait_for(driver_id, timeout_s=600)
        pods = sorted((tmp_path / "pods").glob(f"{driver_id}/attempt-*"))
        assert driver["state"] == "SUCCEEDED", (driver.get("error"), [p.name for p in pods])
        assert len(pods) == (2 if kill_driver else 1)  # a new driver pod after the kill, by the retry policy
        trials = finished_trials(mariadb, study)
        assert len(trials) == N_TRIALS
        trial_runs = [r for r in server.runs.values() if r["run_id"] != driver_id]
        names = [r["display_name"] for r in trial_runs]
        assert len(names) == len(set(names)), f"a trial run was submitted twice: {sorted(names)}"
        assert all(n.startswith(f"{study}-t") for n in names)
        assert {r["experiment_id"] for r in trial_runs} == {driver["experiment_id"]}  # beside their driver
        assert all(r["state"] in ("SUCCEEDED", "FAILED", "CANCELED") for r in trial_runs)


# ----------------------------------------------------------------------------------------- schedule
REGION = "tokyo_central"
FIRST = dt.datetime(2026, 6, 4, 3, 0, tzinfo=dt.timezone.utc)  # a Thursday: 1-day spans tune Tue, test Wed
KNOWN_GOOD = {"policy.gamma": 0.96, "policy.max_wait_min": 7.5, "policy.road_weights.right": 4.3}
SMOKE = ["window.tune_days=1", "window.test_days=1", "window.drivers=120", "window.max_shift_h=8",
         "hydra.callbacks.report.plots=false", "hydra.sweeper.n_jobs=2", "hydra.launcher.n_jobs=2",
         "hydra.launcher.poll_interval=0.3"]


def baseline(db: MariaDB, study: str) -> dict[str, Any]:
    import optuna

    trials = optuna.load_study(study_name=study, storage=db.url()).get_trials(deepcopy=False)
    return dict(min(trials, key=lambda t: t.number).params)


def start_in_study(db: MariaDB, study: str) -> dict[str, Any]:
    import optuna

    from experiment.registry.study_start import STUDY_KEY

    s = optuna.load_study(study_name=study, storage=db.url())
    return s._storage.get_study_system_attrs(s._study_id)[STUDY_KEY]


@pytest.mark.slow
def test_a_schedule_fired_twice_runs_two_cycles_the_second_from_the_firsts_champion(
        tmp_path: Path, mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from experiment.champion import main as champion
    from experiment.registry.store import Registry as ModelRegistry

    needs_socat()
    (tmp_path / "mlflow").mkdir()
    mlflow = MLflowProcess(tmp_path / "mlflow", free_port())  # its own: this test moves the champion
    mlflow.start()
    try:
        track = ["tracking=server", f"tracking.uri={mlflow.uri}"]
        assert champion(["init", *track, *SMOKE_SCALE]) == 0  # the cycles' scale
        poor = register_poor(mlflow.uri, None)
        registry = Registry()
        registry.add(job_image(IMAGE, workdir=ROOT))  # the image's WORKDIR: this checkout (outputs go elsewhere)
        executor = Executor(registry, secrets={"navitune-db": {"password": mariadb.password}},
                            root=tmp_path / "pods", retry_backoff_scale=0.02)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("NAVITUNE_DB_PASSWORD", mariadb.password)
        monkeypatch.setenv(LOOPBACK_ESCAPE, "1")  # the stand-in's pods run here: this MLflow is theirs too
        base = ", ".join(f"policy.{k}: ${{policy.{k}}}" for k in ("gamma", "max_wait_min", "road_weights.right"))
        good = ", ".join(f"{k}: {v}" for k, v in KNOWN_GOOD.items())
        with FakeKFP(executor=executor) as server:
            code = schedule.main([
                "create", "--cron", "0 3 * * THU", "-m", f"hydra.launcher.host={server.url}",
                f"hydra.launcher.image={IMAGE}", storage(mariadb), SECRETS,
                *track, *SMOKE, f"paths.outputs={tmp_path / 'pod-outputs'}", "policy=champion",
                "hydra.sweeper.n_trials=2", f"hydra.sweeper.enqueue=[{{{base}}}, {{{good}}}]",
                "hydra.callbacks.report.replications=5", "--driver-host", server.url, "--retry-backoff-s", "1"])
            out = capsys.readouterr()
            assert code == 0, out.err
            (rec_id,) = recurring(server).items
            reg = ModelRegistry.at(mlflow.uri, REGION)

            first = recurring(server).fire(rec_id, FIRST)
            assert first is not None
            done = server.wait_for(first["run_id"], timeout_s=900)
            assert done["state"] == "SUCCEEDED", done.get("error")
            after_first = reg.champion()
            assert after_first.number == poor + 1  # the known-good parameters were promoted
            assert after_first.policy["gamma"] == KNOWN_GOOD["policy.gamma"]
            study_1 = f"navitune_{REGION}_rolling_2026-06-04_drifting_ml"
            assert baseline(mariadb, study_1)["policy.gamma"] == POOR["gamma"]  # cycle 1 started from the poor one
            # the driver pod kept its champion-at-start in the study (a retried pod's empty disk reads it there)
            assert start_in_study(mariadb, study_1)["champion_version"] == poor
            assert mariadb.password not in json.dumps(start_in_study(mariadb, study_1))

            second = recurring(server).fire(rec_id, FIRST + dt.timedelta(days=7))
            assert second is not None
            done = server.wait_for(second["run_id"], timeout_s=900)
            assert done["state"] == "SUCCEEDED", done.get("error")
            study_2 = f"navitune_{REGION}_rolling_2026-06-11_drifting_ml"
            assert baseline(mariadb, study_2)["policy.gamma"] == after_first.policy["gamma"]
            assert baseline(mariadb, study_2)["policy.road_weights.right"] == \
                after_first.policy["road_weights"]["right"]
    finally:
        mlflow.stop()
