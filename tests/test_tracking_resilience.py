"""MLflow tracking under faults, with real sweeps of the app, a real ``mlflow server`` and a real local webhook.

* **Two sweepers on a fresh local store** (``tracking=local``): both start together, held at a file barrier
  right before they open ``mlflow.db`` (a ``sitecustomize`` on their PYTHONPATH wraps
  ``experiment.tracking.common.prepare``), so both find no tables; both must track their sweep (MLflow used to
  create and migrate the tables in both, and one lost tracking).
* **MLflow killed mid-sweep and restarted** (``tracking=server``): the server is killed (SIGKILL to its process
  group) while a tracked trial is half-way through its days (its job, and any other job that reaches its first
  day meanwhile, is held there at a file gate by a ``sitecustomize`` until the kill, so a loaded machine cannot
  let the sweep run past the moment), kept down until a trial that started after the
  kill has finished, then restarted on the same port and backend store while the sweep is held (SIGSTOP to its
  process group, so the sweep cannot end before the server is back). When the sweep ends, no child run is left
  RUNNING and every run agrees with the study: state, objective, daily values.
* **compile_only** with ``+notify=slack`` (``hydra/launcher=kfp hydra.launcher.compile_only=true``): the
  pipeline is announced once, MLflow tracks nothing, and Slack gets one truthful "pipeline compiled" message
  (no "sweep finished", no KeyError).

Every wait polls a condition (the study, a barrier file, ``/health``) up to a deadline; nothing relies on a
sleep being long enough.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
from optuna.trial import TrialState

from tests.fixtures.mlflow import MLflowProcess
from tests.fixtures.services import free_port
from tests.test_slack_notify import run_sweep, webhook  # noqa: F401  (fixture)
from experiment.tracking.common import OBJECTIVE_METRIC
from tests.test_tracking_mlflow import all_runs, children, launched, load_study, no_report, parents

ROOT = Path(__file__).resolve().parent.parent
SWEEP_TIMEOUT_S = 600.0
WARNING = "MLflow tracking at"  # how the one warning about an unavailable MLflow starts


def env_for(extra_path: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a sweep process: this repo importable, no MLflow or Hydra settings of the caller."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR" and not k.startswith("MLFLOW_")
           and not k.startswith("NAVITUNE_")}
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, str(ROOT), env.get("PYTHONPATH")]))
    return env | extra


def start_sweep(cwd: Path, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
    """``python -m experiment -m ...`` in its own process group (so the test can stop and continue it whole),
    output to files (a pipe could fill up and stall it)."""
    out, err = (cwd / f"{name}.out").open("wb"), (cwd / f"{name}.err").open("wb")
    return subprocess.Popen([sys.executable, "-m", "experiment", "-m", *args], cwd=cwd, env=env, stdout=out,
                            stderr=err, start_new_session=True)


def finish(proc: subprocess.Popen, cwd: Path, name: str) -> str:
    """Wait for a sweep; its stdout + stderr. Fails with its output if it exits non-zero."""
    try:
        proc.wait(timeout=SWEEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    output = (cwd / f"{name}.out").read_text(errors="replace") + (cwd / f"{name}.err").read_text(errors="replace")
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{output[-4000:]}"
    return output


def wait_until(what: str, condition: Callable[[], Any], procs: list[subprocess.Popen],
               timeout_s: float = SWEEP_TIMEOUT_S) -> Any:
    """Poll ``condition`` until it returns something truthy; fail if a watched process exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"process {p.args[:4]} exited ({p.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# ------------------------------------------------------------------- two sweepers, one fresh store
BARRIER_SITECUSTOMIZE = '''
"""Test hook: hold this sweep process right after MLflow's process settings are made (just before the store is
opened) until every peer has arrived (one file per process in $NAVITUNE_TEST_BARRIER_DIR)."""
import os, time
from pathlib import Path

_dir, _n = os.environ.get("NAVITUNE_TEST_BARRIER_DIR"), int(os.environ.get("NAVITUNE_TEST_BARRIER_N", "0"))
if _dir and _n:
    import experiment.tracking.common as _common

    _prepare, _held = _common.prepare, []

    def _prepare_then_wait(settings):
        _prepare(settings)
        if _held:  # once: the sweep process's first open (its forked jobs inherit this)
            return
        _held.append(True)
        Path(_dir, str(os.getpid())).touch()
        deadline = time.monotonic() + 300
        while len(list(Path(_dir).iterdir())) < _n:
            if time.monotonic() > deadline:
                raise RuntimeError("barrier: the other sweeper never arrived")
            time.sleep(0.005)

    _common.prepare = _prepare_then_wait
'''


@pytest.mark.slow
def test_two_sweepers_started_together_on_a_fresh_local_store_both_track(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(BARRIER_SITECUSTOMIZE))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    outputs = tmp_path / "outputs"
    env = env_for(hook, NAVITUNE_TEST_BARRIER_DIR=str(barrier), NAVITUNE_TEST_BARRIER_N="2")
    studies = {"a": "race_a", "b": "race_b"}
    procs = {
        name: start_sweep(tmp_path, [
            "+experiment=smoke", "tracking=local", f"hydra.sweeper.study_name={study}", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.progress=false", f"hydra.sweep.dir={tmp_path / 'sweeps' / name}",
            f"paths.outputs={outputs}", *no_report(),
        ], env, name)
        for name, study in studies.items()
    }
    try:
        outputs_text = {name: finish(proc, tmp_path, name) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                kill_group(proc)
    assert len(list(barrier.iterdir())) == 2, "the two sweepers did not both reach the barrier"
    for name, text in outputs_text.items():
        assert WARNING not in text and "could not start" not in text, f"sweeper {name} lost tracking:\n{text[-3000:]}"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{outputs / 'mlflow.db'}")
    for name, study_name in studies.items():
        exp = client.get_experiment_by_name(study_name)
        assert exp is not None, f"sweeper {name}: no experiment {study_name!r}"
        runs = all_runs(client, exp.experiment_id)
        (parent,) = parents(runs)
        assert parent.info.status == "FINISHED"
        kids = children(runs, parent.info.run_id)
        trials = launched(load_study(tmp_path, study_name))
        assert len(trials) == 2
        assert sorted(int(r.data.tags["navitune.trial"]) for r in kids) == sorted(t.number for t in trials)
        # tracked by the jobs themselves, not added afterwards from the study
        assert all(r.data.tags.get("navitune.backfilled") is None for r in kids)
        assert all(r.info.status == "FINISHED" and OBJECTIVE_METRIC in r.data.metrics for r in kids)



def test_the_store_lock_is_exclusive_times_out_and_dies_with_its_holder(tmp_path: Path) -> None:
    """The lock a fresh local store is created under: a second holder waits (here: gives up after its timeout,
    with one line naming the lock), and a holder killed with SIGKILL leaves nothing to clean up."""
    from experiment.tracking.store import lock_path, locked

    db = tmp_path / "outputs" / "mlflow.db"
    code = ("import sys; from pathlib import Path; from experiment.tracking.store import locked\n"
            f"with locked(Path({str(db)!r})):\n    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env_for(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(TimeoutError) as err:
            with locked(db, timeout_s=0.3):
                pass
        assert str(err.value) == (f"the MLflow store's lock {lock_path(db)} was held for over 0.3 s by another "
                                  "process")
    finally:
        holder.kill()
        holder.wait()
    with locked(db, timeout_s=10):  # released by the kernel when its holder died
        pass
    assert not list((tmp_path / "outputs").iterdir()), "the lock wrote into the store's directory"

# --------------------------------------------------------------------- MLflow killed mid-sweep, restarted
DAYS = 4
N_TRIALS = 16  # room for trials created after the kill
KILLED_STUDY = "killed_it"
VICTIM = 2  # trials 0 and 1 run freely, so one has finished (and was tracked whole) before the kill

GATE_SITECUSTOMIZE = '''
"""Test hook: a job of trial >= $NAVITUNE_TEST_GATE_FROM that reports its first day before the file "go" exists
in $NAVITUNE_TEST_GATE_DIR marks its arrival ("arrived-<trial>") and waits there for "go"."""
import os, time
from pathlib import Path

_dir, _from = os.environ.get("NAVITUNE_TEST_GATE_DIR"), os.environ.get("NAVITUNE_TEST_GATE_FROM")
if _dir and _from:
    import hydra_plugins.navitune_optuna.reporting as _reporting

    _report = _reporting.TrialReporter.report

    def _report_then_wait(self, step, value):
        stop = _report(self, step, value)
        go = Path(_dir, "go")
        if self.number >= int(_from) and not go.exists():
            Path(_dir, f"arrived-{self.number}").touch()
            deadline = time.monotonic() + 300
            while not go.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("gate: the test never opened it")
                time.sleep(0.01)
        return stop

    _reporting.TrialReporter.report = _report_then_wait
'''


def study_or_none(cwd: Path, name: str) -> optuna.Study | None:
    try:
        return load_study(cwd, name)
    except (KeyError, FileNotFoundError):  # the sweeper has not created it yet
        return None


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


@pytest.mark.slow
def test_mlflow_killed_mid_sweep_and_restarted_leaves_no_run_running(tmp_path: Path) -> None:
    server = MLflowProcess(tmp_path, free_port())
    (tmp_path / "sweep").mkdir()
    cwd = tmp_path / "sweep"
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(f"mlflow server did not start: {err}")
    hook, gate = tmp_path / "hook", tmp_path / "gate"
    hook.mkdir()
    gate.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(GATE_SITECUSTOMIZE))
    sweep = start_sweep(cwd, [
        "+experiment=smoke", f"window.end=2026-06-{3 + DAYS:02d}", "tracking=server", f"tracking.uri={server.uri}",
        "tracking.timeout_s=2", "tracking.max_retries=0", f"hydra.sweeper.study_name={KILLED_STUDY}",
        f"hydra.sweeper.n_trials={N_TRIALS}", "hydra.sweeper.pruner.n_startup_trials=1000",  # no pruning: every trial COMPLETEs
        "hydra.sweeper.progress=false", f"paths.outputs={cwd / 'outputs'}", *no_report(),
    ], env_for(hook, NAVITUNE_TEST_GATE_DIR=str(gate), NAVITUNE_TEST_GATE_FROM=str(VICTIM)), "sweep")
    try:
        # 1. kill the server once a trial has finished and the victim is held at the gate after its first day
        #    (its job made its run at its start, with the server up: that run can no longer be ended by its job)
        victim = VICTIM
        wait_until(f"trial {victim} held after its first day, and a finished trial", lambda: (
            (gate / f"arrived-{victim}").exists() and (study := study_or_none(cwd, KILLED_STUDY)) is not None
            and finished(study)), [sweep])
        server.kill()
        # read after the kill: a trial numbered above this was created with the server down
        last_before_kill = max(t.number for t in load_study(cwd, KILLED_STUDY).get_trials(deepcopy=False))
        assert last_before_kill < N_TRIALS - 2, f"the gate let the sweep run on to trial {last_before_kill}"
        (gate / "go").touch()
        print(time.strftime("%H:%M:%S"), "killed; victim", victim, "last", last_before_kill, flush=True)
        # 2. keep it down until a trial created after the kill is part-way through its days: its job found no
        #    server at its start, so it runs untracked (two more trials are left to run after it)
        #    and the victim to finish (its job ends without the server: its run is left for the sweep to complete)
        def after_kill() -> bool:
            trials = load_study(cwd, KILLED_STUDY).get_trials(deepcopy=False)
            return any(t.number == victim and t.state == TrialState.COMPLETE for t in trials) and any(
                t.number > last_before_kill and t.intermediate_values for t in trials)

        wait_until("the victim finished and a trial created after the kill reported a day", after_kill, [sweep])
        # 3. restart it on the same port and store; the sweep is held meanwhile, so it cannot end before
        #    MLflow is back (which is what this test is about)
        os.killpg(sweep.pid, signal.SIGSTOP)
        print(time.strftime("%H:%M:%S"), "stopped", flush=True)
        try:
            server.start()
        finally:
            os.killpg(sweep.pid, signal.SIGCONT)
        print(time.strftime("%H:%M:%S"), "restarted", flush=True)
        output = finish(sweep, cwd, "sweep")
    finally:
        if sweep.poll() is None:
            kill_group(sweep)
        server.stop()
        server.start()  # to read the result (and the store must have survived the kill)
    try:
        check_killed_sweep(server, cwd, victim, output)
    finally:
        server.stop()


def check_killed_sweep(server: MLflowProcess, cwd: Path, victim: int, output: str) -> None:
    from experiment.tracking.job import DAILY, SO_FAR

    client = server.client()
    study = load_study(cwd, KILLED_STUDY)
    trials = {t.number: t for t in launched(study)}
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == N_TRIALS
    assert "Traceback" not in output
    lost = [line for line in output.splitlines() if WARNING in line and f"trial {victim} " in line]
    assert len(lost) == 1 and "completed from the study when the sweep ends" in lost[0], lost
    exp = client.get_experiment_by_name(KILLED_STUDY)
    runs = all_runs(client, exp.experiment_id)
    (parent,) = parents(runs)
    assert parent.info.status == "FINISHED"
    kids = children(runs, parent.info.run_id)
    assert len(runs) == 1 + len(kids)
    assert sorted(int(r.data.tags["navitune.trial"]) for r in kids) == sorted(trials), "one child run per trial"
    assert [r.info.run_name for r in kids if r.info.status != "FINISHED"] == [], "a child run is not FINISHED"
    for run in kids:
        t = trials[int(run.data.tags["navitune.trial"])]
        assert run.data.tags["navitune.state"] == "COMPLETE"
        assert run.data.metrics[OBJECTIVE_METRIC] == pytest.approx(t.value), run.info.run_name
        history = client.get_metric_history(run.info.run_id, SO_FAR)
        assert sorted(m.step for m in history) == sorted(t.intermediate_values), run.info.run_name  # none twice
        assert {m.step: m.value for m in history} == pytest.approx(dict(t.intermediate_values))
    by_trial = {int(r.data.tags["navitune.trial"]): r for r in kids}
    completed = by_trial[victim]
    assert completed.data.tags.get("navitune.completed_from_study") == "true", completed.data.tags
    assert completed.data.tags.get("navitune.backfilled") is None  # the job's own run, completed
    daily = sorted(client.get_metric_history(completed.info.run_id, DAILY), key=lambda m: m.step)
    assert [m.step for m in daily] == list(range(DAYS))
    assert sum(m.value for m in daily) / DAYS == pytest.approx(trials[victim].value, rel=1e-9)
    assert 0 < completed.data.metrics["occupancy_distance"] < 1  # the job's summary, read from its job dir
    assert completed.info.end_time == int(trials[victim].datetime_complete.timestamp() * 1000)
    assert [r for r in kids if r.data.tags.get("navitune.backfilled") == "true"], \
        "no trial ran while the server was down: the outage did not cover a whole trial"



@pytest.mark.slow
def test_backfill_ends_each_unfinished_run_as_its_trial_ended(tmp_path: Path) -> None:
    """In process, a real local MLflow store and a real Optuna study: runs their jobs left RUNNING are ended
    with their trial's outcome (COMPLETE and PRUNED: FINISHED, FAIL: FAILED, stopped with its sweep: KILLED), the
    daily values they miss and no value twice; a trial without a run gets one; a trial still running (another
    sweeper's job) is left alone."""
    from omegaconf import OmegaConf

    from experiment.tracking.backfill import backfill
    from experiment.tracking.job import SO_FAR
    from experiment.tracking.store import open_client

    client = open_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("bf", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, tags={"navitune.role": "sweep"}).info.run_id
    study = optuna.create_study(study_name="bf", direction="maximize")

    def trial(state: TrialState | None, attrs: dict[str, Any] | None = None, run: bool = True) -> int:
        t = study.ask()
        for day, value in ((0, 100.0), (1, 110.0)):
            t.report(value, day)
        for key, value in (attrs or {}).items():
            t.set_user_attr(key, value)
        if run:  # the job's run, made at its start, with day 0 logged before MLflow went away
            r = client.create_run(exp, run_name=f"trial-{t.number}", tags={
                "navitune.role": "trial", "mlflow.parentRunId": parent, "navitune.study": "bf",
                "navitune.trial": str(t.number), "navitune.state": "RUNNING"})
            client.log_metric(r.info.run_id, SO_FAR, 100.0, step=0)
        if state is not None:
            study.tell(t, 105.0 if state == TrialState.COMPLETE else None, state=state)
        return t.number

    expected = {trial(TrialState.COMPLETE): ("COMPLETE", "FINISHED"), trial(TrialState.PRUNED): ("PRUNED", "FINISHED"),
                trial(TrialState.FAIL): ("FAIL", "FAILED"),
                trial(TrialState.FAIL, {"navitune:stopped": True}): ("FAIL", "KILLED")}
    still_running = trial(None)
    without_run = trial(TrialState.COMPLETE, run=False)
    config = OmegaConf.create({"hydra": {"sweeper": {"params": {}}}})
    assert backfill(client, exp, parent, study, config) == (1, 4)

    runs = {int(r.data.tags["navitune.trial"]): r for r in all_runs(client, exp) if "navitune.trial" in r.data.tags}
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number, (state, status) in expected.items():
        run = runs[number]
        assert (run.data.tags["navitune.state"], run.info.status) == (state, status), number
        assert run.data.tags["navitune.completed_from_study"] == "true"
        history = client.get_metric_history(run.info.run_id, SO_FAR)
        assert sorted((m.step, m.value) for m in history) == [(0, 100.0), (1, 110.0)]  # day 0 not twice
        assert (OBJECTIVE_METRIC in run.data.metrics) == (state == "COMPLETE")
        assert run.info.run_name == f"trial-{number}" + ("-pruned" if state == "PRUNED" else "")  # visibly pruned
        assert run.info.end_time == int(trials[number].datetime_complete.timestamp() * 1000)
    assert runs[next(iter(expected))].data.metrics[OBJECTIVE_METRIC] == 105.0
    assert runs[still_running].info.status == "RUNNING"  # not finished in the study: not this sweep's to end
    added = runs[without_run]
    assert added.data.tags["navitune.backfilled"] == "true" and added.info.status == "FINISHED"
    assert added.data.metrics[OBJECTIVE_METRIC] == 105.0
    assert backfill(client, exp, parent, study, config) == (0, 0)  # nothing left to do the second time

# ------------------------------------------------------------------------------------ compile_only
@pytest.mark.slow
def test_compile_only_logs_once_tracks_nothing_and_slack_says_pipeline_compiled(tmp_path: Path,
                                                                                 webhook) -> None:  # noqa: F811
    """``hydra/launcher=kfp hydra.launcher.compile_only=true +notify=slack`` (tracking=local, the default): the
    pipeline is announced in one line, no MLflow store is opened, and Slack gets one truthful message."""
    url = webhook.new_url()
    sweep = run_sweep(tmp_path, url, ["hydra/launcher=kfp", "hydra.launcher.compile_only=true"])
    assert sweep.proc.returncode == 0, sweep.output[-3000:]
    (pipeline,) = (tmp_path / "outputs" / "sweeps").glob("*/*/pipeline.yaml")
    mentions = [line for line in sweep.output.splitlines() if str(pipeline) in line]
    assert len(mentions) == 1 and "compile_only=true" in mentions[0] and "nothing is submitted" in mentions[0], \
        mentions
    assert "KeyError" not in sweep.output and "Traceback" not in sweep.output
    assert not [line for line in sweep.output.splitlines() if "mlflow" in line.lower()]
    assert not (tmp_path / "outputs" / "mlflow.db").exists(), "compile_only opened an MLflow store"
    (text,) = webhook.texts(url)  # no "sweep started" for a sweep that runs nothing
    assert text.startswith(":package: *navitune pipeline compiled*: study `navitune_tokyo_central_smoke_ml` "
                           "(compile_only: nothing was submitted, no trial ran)"), text
    assert f"pipeline `{pipeline}`" in text and f"sweep dir `{pipeline.parent}`" in text
    assert "finished" not in text and "KeyError" not in text and "trials" not in text
    secret = url.split("/services/", 1)[1]
    for path in (p for p in (tmp_path / "outputs").rglob("*") if p.is_file()):
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in sweep.output
