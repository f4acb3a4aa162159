"""``navitune retune`` (experiment/retune, issue 13 §4) against real services: a SQLite registry, the session's
``mlflow server`` and an own ``mlflow server`` that is killed at the decision, with real smoke-sized cycles
(1-day rolling windows, 120 drivers, 8-hour shifts, 3-4 trials, 2-3 report replications):

* bad input is one line, exit 2, nothing written (not a date, unknown scenario, no champion, tracking=off,
  ``-m``, ``window=``, overrides retune sets itself); MLflow down at the start is one line, exit 1;
* a full cycle (a deliberately poor champion, the known-good parameters enqueued) promotes, writes
  ``retune.json`` and posts the decision to a local Slack stand-in; the same as_of again prints the record and
  changes nothing; with its records deleted, and even with its whole directory deleted, it never promotes twice;
* a cycle on a tracking server with ``registry.promotion=manual`` registers a challenger; again: nothing;
* a killed cycle resumes its study in the same directory, keeping the first run's trials and job directories;
* MLflow killed between the sweep and the decision: exit 1, one line, sweep and report kept; the same command
  with MLflow back decides without running the sweep again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

import pytest

from tests.test_registry import POOR, SMOKE_SCALE, register_poor  # a poor champion, made as the registry tests make it
from tests.test_slack_notify import Webhook, webhook  # noqa: F401  (a local Slack webhook: the fixture)

ROOT = Path(__file__).resolve().parent.parent
REGION = "tokyo_central"
AS_OF = "2026-06-04"  # tunes on Tuesday 2 June, tests on Wednesday 3 June (weekdays: busy, so the paired CI is tight)
KNOWN_GOOD = {"policy.gamma": 0.96, "policy.max_wait_min": 7.5, "policy.road_weights.right": 4.3}
SMOKE = ["window.tune_days=1", "window.test_days=1", "window.drivers=120", "window.max_shift_h=8",
         "hydra.callbacks.report.plots=false", "hydra.sweeper.n_jobs=2"]
KEYS = {"as_of", "region", "scenario", "study", "sweep_dir", "outcome", "promoted", "version", "champion_before",
        "champion_after", "candidate_params", "champion_params", "improvement_pct", "ci95_pct"}
DEADLINE_S = 600.0


def retune(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiment", "retune", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def champion_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiment", "champion", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def cycle(outputs: Path, as_of: str = AS_OF, scenario: str = "drifting", region: str = REGION) -> Path:
    return outputs / "retune" / region / scenario / as_of


def study_trials(outputs: Path, study: str) -> list[Any]:
    import optuna

    from hydra_plugins.navitune_shared.storage import make_storage

    storage = make_storage(f"journal://{outputs / 'optuna' / 'studies.journal'}")
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def complete_trials(outputs: Path, study: str) -> int:
    """Trials the study has told COMPLETE (0 while the study or its journal does not exist yet)."""
    if not (outputs / "optuna" / "studies.journal").is_file():
        return 0
    try:
        return sum(1 for t in study_trials(outputs, study) if t.state.name == "COMPLETE")
    except KeyError:  # Optuna: the study is not created yet
        return 0


def wait_for(what: str, condition: Any, proc: subprocess.Popen | None = None, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail at the deadline or when ``proc`` ended first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(0.1)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from experiment.registry.resolver import forget

    forget()


# ----------------------------------------------------------------------------------------- bad input
def in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from experiment.retune.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out.strip(), out.err.strip()


@pytest.mark.parametrize("args, words", [
    (["--as-of", "notadate"], ["--as-of 'notadate'", "YYYY-MM-DD"]),
    (["--as-of=2026-02-30"], ["--as-of '2026-02-30'", "YYYY-MM-DD"]),
    (["window.as_of=yesterday"], ["window.as_of='yesterday'", "YYYY-MM-DD"]),
    (["scenario=winter"], ["unknown scenario 'winter'", "drifting, stationary"]),
    (["tracking=off"], ["tracking=off", "tracking=local or tracking=server"]),
    (["-m"], ["-m", "--as-of YYYY-MM-DD and config overrides"]),
    (["--multirun"], ["--multirun", "--as-of YYYY-MM-DD"]),
    (["window=tune_week"], ["window=tune_week", "window=rolling"]),
    (["window.span=test"], ["window.span", "retune sets"]),
    (["hydra.sweep.dir=/tmp/elsewhere"], ["hydra.sweep.dir", "retune sets"]),
    (["hydra.callbacks.report.enabled=false"], ["hydra.callbacks.report.enabled", "retune sets"]),
    (["--as-of", "2026-03-02", "window.as_of=2026-03-09"], ["contradicts --as-of 2026-03-02"]),
    (["region=atlantis"], ["unknown region 'atlantis'", "tokyo_central"]),
    (["hydra.sweeper.n_trials=0"], ["n_trials=0", "> 0"]),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args: list[str], words: list[str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "outputs"
    code, stdout, err = in_process([*args, f"paths.outputs={out}"], capsys)
    assert code == 2 and stdout == "" and err.count("\n") == 0, (code, stdout, err)
    for word in words:
        assert word in err, err
    assert not out.exists()


@pytest.mark.slow
def test_a_region_without_a_champion_or_mlflow_down_is_one_line_and_writes_nothing(
        tmp_path: Path, closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "outputs"
    code, _, err = in_process(["region=ring_city", f"paths.outputs={out}"], capsys)
    assert code == 2 and err.count("\n") == 0, err
    assert "region ring_city has no champion" in err and "navitune champion init region=ring_city" in err
    assert not out.exists()  # the check did not create the SQLite store
    code, _, err = in_process(["tracking=server", f"tracking.uri=http://127.0.0.1:{closed_port}",
                               f"paths.outputs={out}"], capsys)
    assert code == 1 and err.count("\n") == 0 and "MLflow unreachable" in err, err
    assert not out.exists()


def test_a_cycle_directory_of_another_study_is_refused_and_left_alone(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The same as_of with another demand source under the same paths.outputs: refused before anything runs."""
    out = tmp_path / "outputs"
    d = cycle(out)
    d.mkdir(parents=True)
    text = json.dumps({"study": f"navitune_{REGION}_rolling_{AS_OF}_drifting_ml", "outcome": "promoted"})
    (d / "retune.json").write_text(text)
    code, _, err = in_process(["--as-of", AS_OF, "demand=stats", f"paths.outputs={out}"], capsys)
    assert code == 2 and err.count("\n") == 0, err
    assert f"holds the cycle of study navitune_{REGION}_rolling_{AS_OF}_drifting_ml" in err
    assert f"this command's study is navitune_{REGION}_rolling_{AS_OF}_drifting_stats" in err
    assert (d / "retune.json").read_text() == text and sorted(p.name for p in out.rglob("*")) == [
        "2026-06-04", "drifting", "retune", "retune.json", REGION]


def test_as_of_defaults_to_today_and_window_as_of_is_the_same_key() -> None:
    import datetime as dt

    from experiment.retune.checks import split_args, sweep_argv

    today = dt.date(2026, 11, 30)
    assert split_args(["region=coquimbo"], today) == ("2026-11-30", ["region=coquimbo"])
    assert split_args(["--as-of=2026-03-02", "window=rolling"], today) == ("2026-03-02", [])
    assert split_args(["window.as_of=2026-03-02", "window.tune_days=14"], today) == ("2026-03-02",
                                                                                     ["window.tune_days=14"])
    argv = sweep_argv("2026-03-02", "stationary", ["region=coquimbo"])
    assert argv[:2] == ["-m", "region=coquimbo"] and "window.as_of=2026-03-02" in argv
    assert "window.cycle=rolling_2026-03-02_stationary" in argv
    assert any(a.startswith("hydra.sweep.dir=") and "/retune/${region.name}/stationary/2026-03-02/sweep" in a
               for a in argv)


def test_each_cycle_samples_from_its_own_seed_and_a_given_seed_wins() -> None:
    import datetime as dt

    from experiment.retune.checks import sweep_argv
    from experiment.windows import cycle_seed

    def seeds(argv: list[str]) -> list[str]:
        return [a for a in argv if a.startswith("hydra.sweeper.sampler.seed=")]

    march, april = sweep_argv("2026-03-02", "drifting", []), sweep_argv("2026-03-30", "drifting", [])
    assert seeds(march) == [f"hydra.sweeper.sampler.seed={cycle_seed(dt.date(2026, 3, 2))}"]
    assert seeds(march) != seeds(april) and seeds(march) == seeds(sweep_argv("2026-03-02", "drifting", []))
    assert seeds(sweep_argv("2026-03-02", "drifting", ["hydra.sweeper.sampler.seed=7"])) == [
        "hydra.sweeper.sampler.seed=7"]


# ----------------------------------------------------------------------------------------- a full cycle
def promoting_overrides(outputs: Path) -> list[str]:
    """The champion (a poor one) as trial 0 and the known-good parameters as trial 1: the promotion rule holds."""
    base = ", ".join(f"policy.{k}: ${{policy.{k}}}" for k in ("gamma", "max_wait_min", "road_weights.right"))
    good = ", ".join(f"{k}: {v}" for k, v in KNOWN_GOOD.items())
    return [f"paths.outputs={outputs}", *SMOKE, "policy=champion", "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.enqueue=[{{{base}}}, {{{good}}}]", "hydra.callbacks.report.replications=5"]


@pytest.mark.slow
def test_a_full_cycle_promotes_records_notifies_and_never_promotes_twice(tmp_path: Path, webhook: Webhook) -> None:
    from experiment.registry.store import Registry

    out = tmp_path / "outputs"
    uri = f"sqlite:///{out / 'mlflow.db'}"
    assert champion_cli(tmp_path, "init", f"paths.outputs={out}", *SMOKE_SCALE).returncode == 0
    poor = register_poor(uri, str(out / "mlartifacts"))
    reg = Registry.at(uri, REGION)
    url = webhook.new_url()
    env = dict(os.environ, NAVITUNE_SLACK_WEBHOOK_URL=url)
    args = ["--as-of", AS_OF, *promoting_overrides(out), "+notify=slack"]
    proc = retune(tmp_path, *args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((cycle(out) / "retune.json").read_text())
    assert KEYS <= set(record), set(record) ^ KEYS
    assert record["outcome"] == "promoted" and record["promoted"] is True, record
    assert record["champion_before"] == poor and record["champion_after"] == record["version"] == poor + 1
    assert record["study"] == f"navitune_{REGION}_rolling_{AS_OF}_drifting_ml" and record["scenario"] == "drifting"
    assert record["sweep_dir"] == str(cycle(out) / "sweep") and (cycle(out) / "sweep" / "report.json").is_file()
    assert record["candidate_params"]["gamma"] == KNOWN_GOOD["policy.gamma"]
    assert record["champion_params"]["gamma"] == POOR["gamma"]
    report = json.loads((cycle(out) / "sweep" / "report.json").read_text())
    for demand in ("ml", "stats"):
        assert record["improvement_pct"][demand] == pytest.approx(report["improvement_pct"][demand])
        assert record["ci95_pct"][demand][0] > 0
    assert reg.champion().number == record["version"] and reg.history() == [1, poor, poor + 1]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"retune {AS_OF} {REGION}/drifting: promoted v{poor + 1}") and "retune.json" in last
    # Slack: start and finish of the sweep (the callback), then the decision; the webhook URL is nowhere saved
    texts = webhook.texts(url)
    decision = [t for t in texts if "navitune retune" in t]
    assert len(decision) == 1 and f"promoted v{poor + 1} to champion" in decision[0], texts
    assert any("sweep finished" in t for t in texts)
    for f in cycle(out).rglob("*"):
        if f.is_file() and f.suffix in (".json", ".yaml", ".md", ".log"):
            assert urlparse(url).path not in f.read_text(errors="replace"), f

    # the same as_of again: the recorded decision, nothing run, nothing changed (and no second message)
    versions, trials = len(reg.versions()), len(study_trials(out, record["study"]))
    again = retune(tmp_path, *args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "recorded earlier, nothing run" in again.stdout.strip().splitlines()[-1]
    assert "Study" not in again.stdout + again.stderr  # no sweep started
    assert json.loads((cycle(out) / "retune.json").read_text()) == record
    assert len(reg.versions()) == versions and reg.history() == [1, poor, poor + 1]
    assert len(study_trials(out, record["study"])) == trials
    assert [t for t in webhook.texts(url) if "navitune retune" in t] == decision  # no second message

    # its records lost: the registry knows the sweep (study + directory) and changes nothing
    (cycle(out) / "retune.json").unlink()
    (cycle(out) / "sweep" / "registry_decision.json").unlink()
    replay = retune(tmp_path, *args)
    assert replay.returncode == 0, replay.stderr[-3000:]
    again_record = json.loads((cycle(out) / "retune.json").read_text())
    assert again_record["outcome"] == "already_decided" and again_record["version"] == poor + 1
    assert again_record["promoted"] is True and again_record["champion_after"] == poor + 1
    assert len(reg.versions()) == versions and reg.history() == [1, poor, poor + 1]

    # its whole directory lost: the study is complete (no trial runs), the report is written again, and the
    # decision is found by the same sweep key: never promoted twice
    import shutil

    shutil.rmtree(cycle(out))
    rebuilt = retune(tmp_path, *args)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert json.loads((cycle(out) / "retune.json").read_text())["outcome"] == "already_decided"
    assert len(study_trials(out, record["study"])) == trials
    # (a retried driver pod's empty disk) the champion at the start is the study's, not today's (poor + 1)
    assert json.loads((cycle(out) / "sweep" / "registry_start.json").read_text())["champion_version"] == poor
    assert len(reg.versions()) == versions and reg.history() == [1, poor, poor + 1]


@pytest.mark.slow
def test_a_cycle_on_a_tracking_server_registers_a_challenger_once(tmp_path: Path, mlflow_server: Any) -> None:
    """On the session's server (tokyo_central: the registry tests use the other regions there) with
    registry.promotion=manual, so the champion stays production for the other tests' sweeps."""
    from experiment.registry.store import Registry

    server = ["tracking=server", f"tracking.uri={mlflow_server.uri}"]
    out = tmp_path / "outputs"
    assert champion_cli(tmp_path, "init", *server, *SMOKE_SCALE).returncode == 0
    reg = Registry.at(mlflow_server.uri, REGION)
    champion, versions = reg.champion().number, len(reg.versions())
    args = ["--as-of", "2026-07-13", f"paths.outputs={out}", *server, *SMOKE, "registry.promotion=manual",
            "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
            "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed"]
    proc = retune(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((cycle(out, "2026-07-13") / "retune.json").read_text())
    assert record["outcome"] == "challenger" and record["promoted"] is False, record
    assert "manual" in record["blocked"] or "rule" in record["blocked"], record["blocked"]
    assert record["version"] == reg.alias("challenger").number and len(reg.versions()) == versions + 1
    assert record["champion_before"] == record["champion_after"] == champion == reg.champion().number
    assert record["registry"] == mlflow_server.uri
    again = retune(tmp_path, *args)
    assert again.returncode == 0 and "recorded earlier" in again.stdout, again.stderr[-3000:]
    assert len(reg.versions()) == versions + 1 and reg.champion().number == champion


# ----------------------------------------------------------------------------------------- resuming
@pytest.mark.slow
def test_a_killed_cycle_resumes_its_study_in_the_same_directory(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    assert champion_cli(tmp_path, "init", f"paths.outputs={out}", *SMOKE_SCALE).returncode == 0
    args = ["--as-of", AS_OF, f"paths.outputs={out}", *SMOKE, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=1",
            "hydra.launcher.n_jobs=1", "hydra.sweeper.sampler.n_startup_trials=4",
            "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed",
            # a trial asked for just before the kill has no owner yet: it is recovered after stale_after_s (300)
            "hydra.sweeper.stale_after_s=15"]
    sweep, study = cycle(out) / "sweep", f"navitune_{REGION}_rolling_{AS_OF}_drifting_ml"
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen([sys.executable, "-m", "experiment", "retune", *args], cwd=tmp_path, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for("a first finished trial", lambda: complete_trials(out, study) >= 1, first)
        finally:
            kill_group(first)  # the whole process tree, as a lost machine would
    record = json.loads((cycle(out) / "retune.json").read_text())
    assert record["outcome"] == "incomplete" and "running" in record["reason"] and record["study"] == study
    done_before = {t.number for t in study_trials(out, study) if t.state.name == "COMPLETE"}
    assert 1 <= len(done_before) < 4 and not (sweep / "report.json").exists()
    first_summary = (sweep / "0" / "summary.json").read_text()

    proc = retune(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((cycle(out) / "retune.json").read_text())
    assert record["outcome"] in ("promoted", "challenger") and record["study"] == study, record
    trials = study_trials(out, study)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4 and done_before <= {t.number for t in complete}  # the first run's trials count
    assert (sweep / "0" / "summary.json").read_text() == first_summary  # not overwritten by the resumed run
    for t in complete:  # every trial has its own job directory, named by its number
        assert json.loads((sweep / str(t.number) / "summary.json").read_text())["objective"] == pytest.approx(t.value)
    assert (sweep / "report.json").is_file() and (sweep / "registry_decision.json").is_file()
    assert sorted(p.name for p in (out / "retune").glob("*/*/*")) == [AS_OF]  # one cycle directory


@pytest.mark.slow
def test_sigterm_leaves_the_cycle_interrupted_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (a pod's stop, a service manager's) to a running cycle: exit 130 and the record says interrupted,
    not "running (pid N)" (issue 18 §5)."""
    out = tmp_path / "outputs"
    assert champion_cli(tmp_path, "init", f"paths.outputs={out}", *SMOKE_SCALE).returncode == 0
    args = ["--as-of", AS_OF, f"paths.outputs={out}", *SMOKE, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=1",
            "hydra.launcher.n_jobs=1", "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed"]
    study = f"navitune_{REGION}_rolling_{AS_OF}_drifting_ml"
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen([sys.executable, "-m", "experiment", "retune", *args], cwd=tmp_path, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for("a first finished trial", lambda: complete_trials(out, study) >= 1, first)
            first.send_signal(signal.SIGTERM)  # the retune process only, as a pod's stop would
            code = first.wait(timeout=120)
        finally:
            kill_group(first)
    text = (tmp_path / "first.log").read_text()
    assert code == 130, text[-3000:]
    record = json.loads((cycle(out) / "retune.json").read_text())
    assert record["outcome"] == "incomplete" and record["reason"] == "interrupted", record
    assert "Traceback" not in text, text[-3000:]


@pytest.mark.slow
def test_mlflow_down_at_the_decision_keeps_everything_and_the_same_command_decides(tmp_path: Path) -> None:
    from tests.fixtures.mlflow import MLflowProcess
    from tests.fixtures.services import free_port

    root = tmp_path / "server"
    root.mkdir()
    server = MLflowProcess(root, free_port())
    server.start()
    try:
        out = tmp_path / "outputs"
        track = ["tracking=server", f"tracking.uri={server.uri}"]
        assert champion_cli(tmp_path, "init", *track, *SMOKE_SCALE).returncode == 0
        args = ["--as-of", AS_OF, f"paths.outputs={out}", *track, *SMOKE, "hydra.sweeper.n_trials=3",
                "hydra.sweeper.sampler.n_startup_trials=3", "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed"]
        sweep = cycle(out) / "sweep"
        with open(tmp_path / "first.log", "wb") as log:
            first = subprocess.Popen([sys.executable, "-m", "experiment", "retune", *args], cwd=tmp_path,
                                     stdout=log, stderr=subprocess.PIPE, start_new_session=True)
            try:
                # the sweep is over (its results are written before the report's simulations start): MLflow dies
                wait_for("the end of the sweep", lambda: (sweep / "optimization_results.yaml").is_file(), first)
                server.kill()
                _, err = first.communicate(timeout=DEADLINE_S)
            finally:
                kill_group(first)
        assert first.returncode == 1, err.decode()[-3000:]
        last = err.decode().strip().splitlines()[-1]
        assert "not decided: MLflow unreachable" in last and "run the same command again" in last, last
        record = json.loads((cycle(out) / "retune.json").read_text())
        assert record["outcome"] == "unavailable" and record["promoted"] is False and record["version"] is None
        assert record["improvement_pct"] and record["candidate_params"]  # the report is there
        assert (sweep / "report.json").is_file() and (sweep / "policy_candidate.yaml").is_file()
        assert not (sweep / "registry_decision.json").exists()
        trials = len(study_trials(out, record["study"]))
        jobs = sorted(p.name for p in sweep.iterdir() if p.name.isdigit())

        server.start()  # MLflow is back: the same command decides, without the sweep
        proc = retune(tmp_path, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "the sweep and report of" in proc.stderr and "Study" not in proc.stdout + proc.stderr
        record = json.loads((cycle(out) / "retune.json").read_text())
        assert record["outcome"] in ("promoted", "challenger") and record["version"] == 2, record
        assert len(study_trials(out, record["study"])) == trials
        assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == jobs
        assert (sweep / "registry_decision.json").is_file()
    finally:
        server.stop()


def test_a_cycle_tunes_from_the_whole_champion_and_sweeps_only_the_policy(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Path) -> None:
    """The cycle's sweep runs policy=champion (its untuned keys are the champion's, not today's production.yaml:
    the baseline is the champion); a sweep over anything but policy.* is refused (it would become a parameter of
    the cycle's study and its report could never be written)."""
    from experiment.retune.checks import sweep_argv

    assert "policy=champion" in sweep_argv("2026-03-02", "drifting", [])
    assert "policy=champion" not in sweep_argv("2026-03-02", "drifting", ["policy=production"])
    out = tmp_path / "outputs"
    for sweep in ("tracking=local,off", "registry.promotion=auto,manual", "sink=duckdb,bigquery",
                  "policy=production,random_cruise"):
        code, _, err = in_process(["--as-of", AS_OF, sweep, f"paths.outputs={out}"], capsys)
        assert code == 2 and err.count("\n") == 0 and "sweep policy.* only" in err, (sweep, err)
    assert not out.exists()
