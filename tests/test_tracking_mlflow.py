"""MLflow tracking against a real ``mlflow server`` (``tests/fixtures/mlflow.py``) and a real headless Chromium.

Two real sweeps of the app (``python -m experiment -m +experiment=smoke ... tracking=server``) share one study:
the first runs 4 trials (the production baseline first) plus a trial with an invalid value that fails and is
retried once, the second resumes
the study to 6 trials. Every assertion compares MLflow with the Optuna study (the source of truth): one parent
run, one child run per trial attempt pointing at it, params, metrics, the daily stepped metric, states and
attempts. The tracking URI carries a secret (``${oc.env:...}`` in its user-info part): it must reach neither
MLflow nor the logs. Then Chromium opens the experiment's runs page, expands the parent and must show every
child. With the server down or hung, runs and sweeps finish with one warning and the study keeps every result.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from experiment.config import production_policy
from experiment.tracking.common import OBJECTIVE_METRIC
from tests.fixtures.mlflow import Chromium, MLflowServer

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 600
STUDY = "mlflow_tracking_it"
SECRET_ENV = "NAVITUNE_TEST_MLFLOW_SECRET"
THREE_DAYS = ["+experiment=smoke", "window.end=2026-06-06"]  # 3 smoke days: a daily metric with 3 steps
# the production baseline first (as navi3 enqueues it), then a trial the task rejects (fails, is retried, fails)
_PROD = production_policy()
_REST = f"policy.max_wait_min: {_PROD['max_wait_min']}, policy.road_weights.right: {_PROD['road_weights']['right']}"
ENQUEUE = f"hydra.sweeper.enqueue=[{{policy.gamma: {_PROD['gamma']}, {_REST}}}, {{policy.gamma: 1.5, {_REST}}}]"
WARNING = "MLflow tracking at"  # how the one warning about an unavailable MLflow starts


def no_report() -> list[str]:
    """Switch off the champion/challenger report callback (20 extra simulations per sweep) where a test does
    not need it, if conf/config.yaml has it."""
    from omegaconf import OmegaConf

    conf = OmegaConf.load(ROOT / "conf" / "config.yaml")
    return ["hydra.callbacks.report.enabled=false"] if OmegaConf.select(conf, "hydra.callbacks.report") else []


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None, preflight: bool = True) -> subprocess.CompletedProcess:
    """``python -m experiment``; ``preflight=False`` runs the Hydra task without the CLI's up-front checks (the
    CLI refuses the out-of-range baseline of ENQUEUE before the first trial; the jobs still fail it)."""
    entry = ["-m", "experiment"] if preflight else ["-c", "from experiment.task import task; task()"]
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR" and not k.startswith("MLFLOW_")}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env |= env or {}
    return subprocess.run([sys.executable, *entry, *args, f"paths.outputs={cwd / 'outputs'}"],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, \
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def load_study(cwd: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = cwd / "outputs" / "optuna" / "studies.journal"
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))


def launched(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials the sweeper ran a job for (over-budget trials are told FAIL without a job)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            and not t.user_attrs.get("navitune:over_budget")]


def all_runs(client: Any, exp_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    return client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)


@dataclass
class Sweeps:
    server: MLflowServer
    cwd: Path
    secret: str
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess
    exp_id: str
    runs_after_first: list[Any]
    runs_after_second: list[Any]
    trials_after_first: list[optuna.trial.FrozenTrial]
    trials_after_second: list[optuna.trial.FrozenTrial]
    best_after_first: float
    second_ms: int  # how long the second sweep's process ran (it starts a few seconds after the first ended)
    noop: subprocess.CompletedProcess  # a third start, with nothing left to run
    noop_ms: int
    parent_after_noop: Any


@pytest.fixture(scope="module")
def sweeps(mlflow_server: MLflowServer, tmp_path_factory: pytest.TempPathFactory) -> Sweeps:
    cwd = tmp_path_factory.mktemp("tracked_sweep")
    secret = "s3cr3t-" + secrets.token_hex(8)
    # the password of HTTP basic auth (which this server ignores) comes from the environment
    uri = f"http://navitune:${{oc.env:{SECRET_ENV}}}@127.0.0.1:{mlflow_server.port}"
    common = [*THREE_DAYS, "tracking=server", f"tracking.uri={uri}", f"hydra.sweeper.study_name={STUDY}",
              "hydra.sweeper.max_retries=1", "hydra.sweeper.max_failure_rate=0.5", ENQUEUE,
              "hydra.sweeper.pruner.n_startup_trials=2", "hydra.sweeper.pruner.n_warmup_steps=0",
              "hydra.sweeper.progress=false"]
    env = {SECRET_ENV: secret}
    client = mlflow_server.client()
    first = ok(cli(cwd, "-m", *common, "hydra.sweeper.n_trials=4", *no_report(), env=env, preflight=False))
    exp = client.get_experiment_by_name(STUDY)
    assert exp is not None, "no MLflow experiment named after the study"
    runs_first = all_runs(client, exp.experiment_id)
    study = load_study(cwd, STUDY)
    trials_first, best_first = launched(study), study.best_value
    time.sleep(3)  # a gap between the sweep and its resumption, which the parent's duration must not count
    t0 = time.time()
    second = ok(cli(cwd, "-m", *common, "hydra.sweeper.n_trials=6", env=env, preflight=False))  # with the report
    second_ms = int((time.time() - t0) * 1000)
    runs_second = all_runs(client, exp.experiment_id)
    time.sleep(3)
    t0 = time.time()
    noop = ok(cli(cwd, "-m", *common, "hydra.sweeper.n_trials=6", env=env, preflight=False))  # nothing to run
    noop_ms = int((time.time() - t0) * 1000)
    (parent_after_noop,) = parents(all_runs(client, exp.experiment_id))
    return Sweeps(mlflow_server, cwd, secret, first, second, exp.experiment_id, runs_first, runs_second,
                  trials_first, launched(load_study(cwd, STUDY)), best_first, second_ms, noop, noop_ms,
                  parent_after_noop)


def parents(runs: list[Any]) -> list[Any]:
    return [r for r in runs if r.data.tags.get("navitune.role") == "sweep"]


def children(runs: list[Any], parent_id: str) -> list[Any]:
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]


# ------------------------------------------------------------------------------------- the sweep
@pytest.mark.slow
def test_one_parent_run_and_one_child_run_per_trial_attempt(sweeps: Sweeps) -> None:
    runs, trials = sweeps.runs_after_first, sweeps.trials_after_first
    (parent,) = parents(runs)
    kids = children(runs, parent.info.run_id)
    assert len(runs) == 1 + len(kids), "a run that is neither the parent nor one of its children"
    # 4 finished trials + the invalid trial and its retry (both FAIL)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
    assert [t.state for t in trials].count(TrialState.FAIL) == 2
    assert sorted(int(r.data.tags["navitune.trial"]) for r in kids) == sorted(t.number for t in trials)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"sweep-{STUDY}"
    assert all(r.info.status in ("FINISHED", "FAILED") for r in kids), [r.info.status for r in kids]


@pytest.mark.slow
def test_child_runs_hold_trial_params_metrics_daily_steps_and_state(sweeps: Sweeps) -> None:
    client = sweeps.server.client()
    by_number = {t.number: t for t in sweeps.trials_after_first}
    (parent,) = parents(sweeps.runs_after_first)
    for run in children(sweeps.runs_after_first, parent.info.run_id):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        trial = by_number[int(tags["navitune.trial"])]
        assert tags["navitune.study"] == STUDY
        assert tags["navitune.state"] == trial.state.name
        assert int(tags["navitune.attempt"]) == trial.user_attrs.get("navitune:attempt", 0)
        assert int(tags["navitune.origin_trial"]) == trial.user_attrs.get("navitune:retry_of", trial.number)
        assert run.info.run_name == f"trial-{trial.number}" + (
            f"-retry-{tags['navitune.attempt']}" if tags["navitune.attempt"] != "0" else "") + (
            "-pruned" if trial.state == TrialState.PRUNED else "")  # visibly pruned in the runs table
        for name, value in trial.params.items():  # the trial's parameters under Optuna's names
            assert float(params[name]) == pytest.approx(value, rel=1e-12), name
        for key, value in {"region.name": "tokyo_central", "window.name": "smoke", "window.end": "2026-06-06",
                           "demand.source": "ml", "window.drivers": "120"}.items():
            assert params[key] == value, key
        # the trial's policy is its own, tuned from production (not "production" with other values)
        assert (params["policy.name"], params["policy.base"]) == (f"trial-{trial.number}", "production")
        # what the trial reported to Optuna after each day, step for step
        so_far = client.get_metric_history(run.info.run_id, "revenue_per_driver_day_so_far_yen")
        assert {m.step: m.value for m in so_far} == pytest.approx(trial.intermediate_values)
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED"
            assert metrics[OBJECTIVE_METRIC] == pytest.approx(trial.value)
            # one name for the objective: no "objective" or "revenue_per_driver_day_yen" twin
            assert "objective" not in metrics and "revenue_per_driver_day_yen" not in metrics
            for key in ("occupancy_distance", "trips_per_driver_shift"):
                assert key in metrics, key
            # MLflow lists metrics in the order they were first logged: the objective first, not the pruner's
            first = client.search_runs([sweeps.exp_id], filter_string=f"attributes.run_id = '{run.info.run_id}'")
            assert next(iter(first[0].data.metrics)) == OBJECTIVE_METRIC, list(first[0].data.metrics)
            assert 0 < metrics["occupancy_distance"] < 1
            daily = sorted(client.get_metric_history(run.info.run_id, "daily_revenue_per_driver_yen"),
                           key=lambda m: m.step)
            assert [m.step for m in daily] == [0, 1, 2]
            assert sum(m.value for m in daily) / 3 == pytest.approx(trial.value, rel=1e-9)
            assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"summary.json", "config.yaml"}
        elif trial.state == TrialState.PRUNED:
            assert run.info.status == "FINISHED"
            assert OBJECTIVE_METRIC not in metrics
        else:
            assert trial.params["policy.gamma"] == 1.5
            assert run.info.status == "FAILED"
            assert "policy.gamma=1.5" in tags["navitune.error"]
            assert OBJECTIVE_METRIC not in metrics


@pytest.mark.slow
def test_parent_run_holds_the_study_settings_config_and_best(sweeps: Sweeps, tmp_path: Path) -> None:
    client = sweeps.server.client()
    (parent,) = parents(sweeps.runs_after_first)
    params, tags, metrics = parent.data.params, parent.data.tags, parent.data.metrics
    assert params["study"] == STUDY
    assert params["storage"].startswith("journal://") and params["storage"].endswith("studies.journal")
    assert params["region.name"] == "tokyo_central"
    window = (params["window.name"], params["window.start"], params["window.end"])
    assert window == ("smoke", "2026-06-03", "2026-06-06")
    assert params["sampler"] == "TPESampler" and params["pruner"] == "MedianPruner"
    assert params["search_space"] == "navi3"
    assert params["search_space.policy.gamma"] == "interval(0.85, 0.99)"
    assert params["direction"] == "maximize"
    assert json.loads(params["baseline"])["policy.gamma"] == _PROD["gamma"]  # the first entry of ENQUEUE
    assert [e["policy.gamma"] for e in json.loads(params["enqueued"])] == [1.5]  # the rest
    assert "hydra.sweeper.n_trials=4" in tags["navitune.overrides"]
    assert "tracking=server" in tags["navitune.overrides"]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode == 0:
        assert tags["navitune.git_commit"] == commit.stdout.strip()
        assert tags["navitune.git_dirty"] in ("true", "false")
    assert metrics[OBJECTIVE_METRIC] == pytest.approx(sweeps.best_after_first)  # the headline: the best trial's
    assert "best_value" not in metrics
    assert metrics["trials_finished"] == 4
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.yaml", "optimization_results.yaml", "best_policy.yaml", "invocations"} <= artifacts
    config = Path(client.download_artifacts(parent.info.run_id, "config.yaml", str(tmp_path))).read_text()
    assert f"${{oc.env:{SECRET_ENV}}}" in config  # composed config, interpolations NOT resolved
    assert f"study_name: {STUDY}" in config


@pytest.mark.slow
def test_resumed_sweep_adds_children_to_the_same_parent(sweeps: Sweeps) -> None:
    before, after = sweeps.runs_after_first, sweeps.runs_after_second
    (parent_before,) = parents(before)
    (parent,) = parents(after)
    assert parent.info.run_id == parent_before.info.run_id
    assert parent.data.tags["navitune.invocations"] == "2"
    assert "hydra.sweeper.n_trials=6" in parent.data.tags["navitune.overrides"]
    kids = children(after, parent.info.run_id)
    assert len(after) == 1 + len(kids)
    trials = sweeps.trials_after_second
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 6
    assert sorted(int(r.data.tags["navitune.trial"]) for r in kids) == sorted(t.number for t in trials)
    assert len(kids) > len(children(before, parent.info.run_id))
    study = load_study(sweeps.cwd, STUDY)
    assert parent.data.metrics[OBJECTIVE_METRIC] == pytest.approx(study.best_value)
    # its duration is the time its two starts ran, not the time from the first start to the second's end
    first_end = parents(before)[0].info.end_time
    assert parent.info.end_time - parent.info.start_time <= first_end - parent.info.start_time + sweeps.second_ms
    assert parent.data.metrics["trials_finished"] == 6
    # every result file of the resumed sweep's directory is attached (the report's under report/)
    from experiment.tracking.callback import result_files

    sweep_dir = Path(parent.data.tags["navitune.sweep_dir"])
    assert sweep_dir.parent.parent == sweeps.cwd / "outputs" / "sweeps"
    expected = {f"{folder}/{p.name}" if folder else p.name for p, folder in result_files(sweep_dir)}
    assert "optimization_results.yaml" in expected
    client = sweeps.server.client()
    attached = {a.path for a in client.list_artifacts(parent.info.run_id)}
    attached |= {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert expected <= attached, expected - attached


@pytest.mark.slow
def test_a_rerun_with_nothing_to_run_leaves_the_parent_on_the_trials_directory(sweeps: Sweeps) -> None:
    """A rerun of a complete study removes its own empty sweep directory: the parent's description and
    ``navitune.sweep_dir`` keep naming the directory that holds the trials, and its duration grows by the
    rerun's few seconds, not by the time since the last sweep."""
    (before,) = parents(sweeps.runs_after_second)
    after = sweeps.parent_after_noop
    assert "nothing to run" in sweeps.noop.stdout + sweeps.noop.stderr
    assert after.data.tags["navitune.invocations"] == "3"
    trials_dir = Path(before.data.tags["navitune.sweep_dir"])
    assert any(p.is_dir() and p.name.isdigit() for p in trials_dir.iterdir())  # the second sweep's trials
    assert after.data.tags["navitune.sweep_dir"] == str(trials_dir)
    assert f"Latest sweep directory: `{trials_dir}`" in after.data.tags["mlflow.note.content"]
    grew = (after.info.end_time - after.info.start_time) - (before.info.end_time - before.info.start_time)
    assert 0 <= grew <= sweeps.noop_ms, (grew, sweeps.noop_ms)  # the 3 s before the rerun are not counted


@pytest.mark.slow
def test_no_secret_reaches_mlflow_or_the_logs(sweeps: Sweeps, tmp_path: Path) -> None:
    client = sweeps.server.client()
    secret = sweeps.secret
    for run in sweeps.runs_after_second:
        for kind, values in (("param", run.data.params), ("tag", run.data.tags)):
            for key, value in values.items():
                assert secret not in value, f"{kind} {key} of run {run.info.run_name} holds the secret"
        dest = tmp_path / run.info.run_id
        dest.mkdir()
        client.download_artifacts(run.info.run_id, "", str(dest))
        files = [p for p in dest.rglob("*") if p.is_file()]
        assert files, f"run {run.info.run_name} has no artifacts"
        for path in files:
            assert secret not in path.read_text(errors="replace"), f"artifact {path.name} of {run.info.run_name}"
    for proc in (sweeps.first, sweeps.second, sweeps.noop):
        assert secret not in proc.stdout + proc.stderr
    assert secret not in sweeps.server.log.read_text(errors="replace")


def printed_runs_url(proc: subprocess.CompletedProcess) -> str:
    """The MLflow page a sweep prints ("MLflow: new|resumed parent run ... of experiment ...: <url>")."""
    match = re.search(r"MLflow: (?:new|resumed) parent run \S+ of experiment \S+: (http\S+)", proc.stdout + proc.stderr)
    assert match, f"no MLflow link in the sweep's log:\n{(proc.stdout + proc.stderr)[-3000:]}"
    return match.group(1)


@pytest.mark.slow
def test_mlflow_ui_in_chromium_shows_the_parent_with_its_children(sweeps: Sweeps, chromium: Chromium,
                                                                    tmp_path: Path) -> None:
    """The page the sweep prints, in MLflow 3's UI: the "Model training" workspace (not the GenAI one), the
    objective as the first metric column (MLflow 3.17 shows none unless a view chooses them), the tuned
    parameters; the parent row renders with its best value; expanded, every child does."""
    (parent,) = parents(sweeps.runs_after_second)
    names = sorted(r.info.run_name for r in children(sweeps.runs_after_second, parent.info.run_id))
    url = printed_runs_url(sweeps.second)
    assert url.startswith(f"{sweeps.server.uri}/#/experiments/{sweeps.exp_id}/runs?"), url
    chromium.open(url)
    name = parent.info.run_name
    link = f"[...document.querySelectorAll('a')].find(a => a.textContent.trim() === {name!r})"
    chromium.wait_for(f"!!{link}", what=f"the parent run {name!r} in the runs table")
    chromium.evaluate("document.querySelector('button[aria-label=\"Close\"]')?.click()")  # the assistant panel
    metric_columns = chromium.wait_for(
        "(() => { const c = [...document.querySelectorAll('.ag-header-cell[col-id^=\"metrics.\"]')]"
        ".map(e => e.getAttribute('col-id')); return c.length ? c : null; })()", what="a metric column")
    assert metric_columns[0] == f"metrics.`{OBJECTIVE_METRIC}`", metric_columns
    params = chromium.evaluate("[...document.querySelectorAll('.ag-header-cell[col-id^=\"params.\"]')]"
                               ".map(e => e.getAttribute('col-id'))")
    assert "params.`policy.gamma`" in params, params
    text = chromium.evaluate("document.body.innerText")
    assert "Model registry" in text and "Judges" not in text, "not the Model training workspace:\n" + text[:1500]
    assert str(int(parent.data.metrics[OBJECTIVE_METRIC])) in text  # the parent's row shows the best value
    assert not chromium.evaluate(f"{names!r}.some(n => document.body.innerText.includes(n))"), \
        "children shown before the parent is expanded: are they really nested under it?"
    clicked = chromium.evaluate(f"""(() => {{
        const button = {link}.closest('[role=gridcell]')?.querySelector('button');
        if (!button) return false;
        button.click();
        return true;
    }})()""")
    assert clicked, "no expand button next to the parent run"
    chromium.wait_for(f"{names!r}.every(n => document.body.innerText.includes(n))",
                      what=f"the child runs {names} under the parent")
    dom = chromium.dom()
    assert name in dom and all(n in dom for n in names)
    shot = chromium.screenshot(tmp_path / "mlflow-runs.png")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "mlflow-runs.html").write_text(dom)
    print(f"screenshot: {shot}")
    if os.environ.get("NAVITUNE_UPDATE_DOCS") == "1":  # refresh the README's picture
        shutil.copyfile(shot, ROOT / "docs" / "mlflow-runs.png")


@pytest.mark.slow
def test_a_remote_job_finds_its_parent_by_the_sweeps_tags(sweeps: Sweeps) -> None:
    """A job that did not inherit the parent's id from the sweep process (a Kubeflow run in a cluster) finds the
    parent by the study and storage it is given. Here: a job run alone with the environment the sweeper gives
    its jobs, as a re-attached attempt of the study's last trial (a finished trial takes no more reports)."""
    last = max(t.number for t in sweeps.trials_after_second)
    env_set = {"NAVITUNE_OPTUNA_STUDY": STUDY, "NAVITUNE_OPTUNA_TRIAL": str(last), "NAVITUNE_OPTUNA_ATTEMPT": "1",
               "NAVITUNE_OPTUNA_ORIGIN": str(last), "NAVITUNE_KFP_RUN_ID": "run-abc",
               "NAVITUNE_KFP_RUN_URL": "https://kfp.example/#/runs/details/run-abc"}
    ok(cli(sweeps.cwd, "+experiment=smoke", "tracking=server", f"tracking.uri={sweeps.server.uri}",
           f"hydra.sweeper.study_name={STUDY}", *[f"++hydra.job.env_set.{k}='{v}'" for k, v in env_set.items()]))
    (parent,) = parents(sweeps.runs_after_second)
    client = sweeps.server.client()
    (run,) = client.search_runs([sweeps.exp_id], filter_string="tags.`navitune.kfp_run_id` = 'run-abc'")
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.info.run_name == f"trial-{last}-retry-1"
    assert (tags["navitune.trial"], tags["navitune.attempt"]) == (str(last), "1")
    assert tags["navitune.origin_trial"] == str(last)
    assert tags["navitune.state"] == "COMPLETE"
    assert tags["navitune.kfp_run_url"] == env_set["NAVITUNE_KFP_RUN_URL"]


# ------------------------------------------------------------------------------- single runs
@pytest.mark.slow
def test_a_single_run_is_a_standalone_run(mlflow_server: MLflowServer, tmp_path: Path) -> None:
    """No ``-m``: one run of its own, no parent. The URI's password (basic auth, which this server ignores),
    given by reference, is found nowhere: MLflow params, tags, the config artifact, the logs. (Written in clear
    it is refused: Hydra would save it with the run, see ``tests/test_secrets_canary.py``.)"""
    import json

    password = "pw-" + secrets.token_hex(6)
    uri = f"http://navitune:${{oc.env:{SECRET_ENV}}}@127.0.0.1:{mlflow_server.port}"
    proc = ok(cli(tmp_path, "+experiment=smoke", "tracking=server", f"tracking.uri={uri}",
                  "tracking.experiment=standalone_it", env={SECRET_ENV: password}))
    client = mlflow_server.client()
    exp = client.get_experiment_by_name("standalone_it")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = all_runs(client, exp.experiment_id)
    assert "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags["navitune.role"] == "run" and run.data.tags["navitune.state"] == "COMPLETE"
    assert "navitune.trial" not in run.data.tags
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tokyo_central-production-smoke"
    (summary_path,) = (tmp_path / "outputs" / "runs").glob("*/*/summary.json")
    assert run.data.metrics[OBJECTIVE_METRIC] == pytest.approx(json.loads(summary_path.read_text())["objective"])
    # the log names the run's page, without credentials
    assert f"{mlflow_server.uri}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}" in proc.stdout + proc.stderr
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "artifacts"))).read_text()
    assert f"uri: {uri}" in config  # the reference, not the password
    values = [*run.data.params.values(), *run.data.tags.values(), config, proc.stdout, proc.stderr]
    assert not [v for v in values if password in v]


@pytest.mark.slow
def test_default_local_store_under_outputs(tmp_path: Path) -> None:
    """``tracking=local`` (the default): a SQLite store and artifacts under outputs/, nothing elsewhere."""
    ok(cli(tmp_path, "+experiment=smoke"))
    outputs = tmp_path / "outputs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"], "tracking wrote outside paths.outputs"
    assert (outputs / "mlflow.db").is_file()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{outputs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("navitune_tokyo_central_smoke_ml")
    (run,) = all_runs(client, exp.experiment_id)
    assert run.info.status == "FINISHED" and run.data.metrics[OBJECTIVE_METRIC] > 0
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(outputs / "mlartifacts")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.yaml", "summary.json"}


@pytest.mark.slow
def test_tracking_off_writes_no_store(tmp_path: Path) -> None:
    ok(cli(tmp_path, "+experiment=smoke", "tracking=off"))
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["results.duckdb", "runs"]


# ---------------------------------------------------------------------------------- MLflow down
def mlflow_lines(proc: subprocess.CompletedProcess, port: int) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if re.search(r"mlflow|:%d\b" % port, line, re.IGNORECASE)]


@pytest.mark.slow
def test_sweep_completes_with_one_warning_when_mlflow_is_down(closed_port: int, tmp_path: Path) -> None:
    proc = ok(cli(tmp_path, "-m", "+experiment=smoke", "tracking=server",
                  f"tracking.uri=http://127.0.0.1:{closed_port}", "hydra.sweeper.study_name=down_it",
                  "hydra.sweeper.n_trials=3", "hydra.sweeper.progress=false", *no_report()))
    lines = mlflow_lines(proc, closed_port)
    assert len(lines) == 1 and WARNING in lines[0], lines
    assert "not tracked" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    trials = load_study(tmp_path, "down_it").get_trials(deepcopy=False)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert all(t.value and t.value > 0 for t in trials if t.state == TrialState.COMPLETE)
    assert len(list((tmp_path / "outputs" / "sweeps").glob("*/*/*/summary.json"))) == 3


@pytest.mark.slow
def test_trials_that_ran_untracked_get_child_runs_from_the_study(mlflow_server: MLflowServer,
                                                                  tmp_path: Path) -> None:
    """Trials that ran while MLflow was off (or down) are added to the parent when the sweep next ends with
    MLflow reachable: one child run each, built from the study (parameters, objective, state, the values
    reported after each day), tagged ``navitune.backfilled``; trials tracked by their jobs are not touched."""
    study_name = "backfill_it"
    common = [*THREE_DAYS, f"hydra.sweeper.study_name={study_name}", "hydra.sweeper.progress=false", *no_report()]
    ok(cli(tmp_path, "-m", *common, "tracking=off", "hydra.sweeper.n_trials=2"))
    untracked = {t.number: t for t in launched(load_study(tmp_path, study_name))}
    assert len(untracked) == 2
    ok(cli(tmp_path, "-m", *common, "tracking=server", f"tracking.uri=http://127.0.0.1:{mlflow_server.port}",
           "hydra.sweeper.n_trials=3"))
    client = mlflow_server.client()
    exp = client.get_experiment_by_name(study_name)
    runs = all_runs(client, exp.experiment_id)
    (parent,) = parents(runs)
    kids = children(runs, parent.info.run_id)
    trials = {t.number: t for t in launched(load_study(tmp_path, study_name))}
    assert sorted(int(r.data.tags["navitune.trial"]) for r in kids) == sorted(trials)  # one child per trial
    added = {int(r.data.tags["navitune.trial"]): r for r in kids if r.data.tags.get("navitune.backfilled") == "true"}
    assert sorted(added) == sorted(untracked)
    for number, run in added.items():
        t = trials[number]
        assert run.data.tags["navitune.state"] == t.state.name and run.info.status == "FINISHED"
        assert run.data.metrics[OBJECTIVE_METRIC] == pytest.approx(t.value)
        for key, value in t.params.items():
            assert float(run.data.params[key]) == pytest.approx(value)
        assert run.data.params["region.name"] == "tokyo_central"
        history = client.get_metric_history(run.info.run_id, "revenue_per_driver_day_so_far_yen")
        assert {m.step: m.value for m in history} == pytest.approx(dict(t.intermediate_values))
        assert run.info.start_time == int(t.datetime_start.timestamp() * 1000)
    (tracked,) = [r for r in kids if r.data.tags.get("navitune.backfilled") is None]
    assert "trips_per_driver_shift" in tracked.data.metrics  # the job's own run, with the job's metrics


@pytest.mark.slow
def test_a_hung_server_costs_seconds_not_minutes(silent_port: int, tmp_path: Path) -> None:
    """A server that accepts connections and never answers: the run waits ``tracking.timeout_s`` once, warns
    once, and finishes (MLflow's defaults would wait 120 s per request, with 7 retries)."""
    t0 = time.monotonic()
    proc = ok(cli(tmp_path, "+experiment=smoke", "tracking=server", f"tracking.uri=http://127.0.0.1:{silent_port}",
                  "tracking.timeout_s=2"))
    elapsed = time.monotonic() - t0
    lines = mlflow_lines(proc, silent_port)
    assert len(lines) == 1 and WARNING in lines[0] and "timed out" in lines[0], lines
    assert elapsed < 60, f"the run took {elapsed:.0f} s"
    assert list((tmp_path / "outputs" / "runs").glob("*/*/summary.json"))


# ------------------------------------------------------------------------------- config, imports
@pytest.mark.parametrize("args, message", [
    (["tracking=server", "tracking.uri=ftp://u:hunter2@host:21"],
     "navitune: invalid config tracking.uri='ftp://***@host:21'; allowed: http(s)://host[:port]"),
    (["tracking.uri=http://127.0.0.1:5000"], "navitune: invalid config tracking.uri='http://127.0.0.1:5000'; "
                                              "allowed: sqlite:///PATH"),
    (["tracking.kind=remote"], "navitune: invalid config tracking.kind='remote'; allowed: local, server, off"),
    (["tracking.timeout_s=0"], "navitune: invalid config tracking.timeout_s=0.0; allowed: seconds in (0, 600]"),
    (["tracking=cloud"], "navitune: unknown tracking 'cloud'; allowed: local, off, server"),
    (["tracking.url=x"], "navitune: unknown config key tracking.url (did you mean tracking.uri?); allowed: kind, uri, "
                         "experiment"),
])
def test_bad_tracking_config_fails_with_one_line(args: list[str], message: str) -> None:
    from experiment.preflight import preflight

    problem = preflight(args)
    assert problem is not None and problem.startswith(message), problem
    assert "\n" not in problem and "hunter2" not in problem


def test_hydra_start_does_not_import_mlflow() -> None:
    """Hydra imports the callback module at every start; ``import mlflow`` takes seconds."""
    code = ("import sys, experiment.__main__, experiment.tracking.callback, experiment.tracking.job;"
            "from experiment.tracking.callback import MLflowSweepCallback; MLflowSweepCallback();"
            "print('mlflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
