"""The selection stage (experiment/report/selection.py): which trials are finalists, which one is chosen, its
settings' bad input, and a real smoke sweep whose report names the chosen trial as the candidate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from experiment.errors import ReportError
from experiment.report.selection import Finalist, choose, finalists
from experiment.report.settings import ReportSettings

ROOT = Path(__file__).resolve().parent.parent


def trial(number: int, value: float | None, gamma: float, state: TrialState = TrialState.COMPLETE):
    t = create_trial(state=state, value=value, params={"policy.gamma": gamma},
                     distributions={"policy.gamma": FloatDistribution(0.5, 1.0)})
    t.number = number
    return t


def test_finalists_are_the_best_complete_trials_with_distinct_parameters_best_first() -> None:
    trials = [trial(0, 100.0, 0.9), trial(1, 130.0, 0.8), trial(2, None, 0.7, TrialState.PRUNED),
              trial(3, 130.0, 0.8),  # a retry of trial 1's point: counted once
              trial(4, 120.0, 0.6), trial(5, 125.0, 0.95), trial(6, None, 0.99, TrialState.FAIL)]
    got = finalists(trials, 3)
    assert [f.trial for f in got] == [1, 5, 4]
    assert got[0].params == {"policy.gamma": 0.8} and got[0].tuning_value == 130.0
    assert [f.trial for f in finalists(trials, 2, maximize=False)] == [0, 4]
    assert len(finalists(trials, 10)) == 4


def test_the_best_mean_on_the_fresh_seeds_is_chosen_not_the_best_tuning_value() -> None:
    lucky = Finalist(1, {"policy.gamma": 0.8}, 130.0, [100.0, 104.0])
    good = Finalist(5, {"policy.gamma": 0.95}, 125.0, [103.0, 105.0])
    assert choose([lucky, good]).trial == 5
    assert choose([lucky, good], maximize=False).trial == 1
    tie = Finalist(7, {"policy.gamma": 0.5}, 140.0, [104.0, 104.0])
    assert choose([good, tie]).trial == 7  # equal fresh means: the better tuning value
    with pytest.raises(ValueError, match="fresh-seed values"):
        choose([Finalist(1, {}, 1.0)])


@pytest.mark.parametrize("key,value,allowed", [
    ("selection_top", -1, "a whole number in 0..20"), ("selection_top", 21, "a whole number in 0..20"),
    ("selection_top", True, "a whole number in 0..20"), ("selection_seeds", 0, "a whole number in 1..20"),
    ("selection_seeds", "two", "a whole number in 1..20"),
])
def test_bad_selection_settings_are_one_line_naming_the_key(key: str, value, allowed: str) -> None:
    with pytest.raises(ReportError) as err:
        ReportSettings(**{key: value}).check()
    assert str(err.value).startswith(f"navitune.report: invalid report.{key}={value!r}; allowed: {allowed}")
    assert "\n" not in str(err.value)


ROLLING = ["window=rolling", "window.as_of=2026-06-04", "window.tune_days=1", "window.test_days=1",
           "window.drivers=120"]  # a retune cycle's windows, smoke-sized


@pytest.mark.slow
@pytest.mark.parametrize("window, selection, seeds", [
    (["window=smoke"], ["hydra.callbacks.report.selection_top=3", "hydra.callbacks.report.selection_seeds=2"], 2),
    (ROLLING, [], 1),  # the default: the 3 best on 1 fresh seed
], ids=["smoke-3x2", "rolling-default"])
def test_a_smoke_sweeps_candidate_is_the_trial_the_selection_stage_chose(tmp_path: Path, window: list[str],
                                                                         selection: list[str], seeds: int) -> None:
    out = tmp_path / "outputs"
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", "-m", *window, "hydra.sweeper.n_trials=6", f"paths.outputs={out}",
         "tracking=off", "hydra.sweeper.progress=false", "hydra.callbacks.report.replications=2", "hydra.callbacks.report.rule=fixed",
         "hydra.callbacks.report.plots=false", *selection,
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "sweep" / "report.json").read_text())
    sel = report["selection"]
    tuning = report["windows"]["tuning"]  # the trials' window: its name, and its seed + 100 + j
    assert sel["window"] == tuning["name"] == window[0].split("=")[1]
    assert sel["seeds"] == [tuning["seed"] + 100 + j for j in range(seeds)]
    assert len(sel["finalists"]) == 3 and sel["simulations"] == 3 * seeds
    # the fresh seeds ran the trials' own window and fleet (a week of 1,000 drivers would earn several times more)
    assert all(0.7 < f["fresh_mean"] / f["tuning_value"] < 1.3 for f in sel["finalists"]), sel["finalists"]
    means = {f["trial"]: f["fresh_mean"] for f in sel["finalists"]}
    assert sel["chosen_trial"] == max(means, key=means.get)
    chosen = next(f for f in sel["finalists"] if f["trial"] == sel["chosen_trial"])
    assert report["best_params"] == chosen["params"]  # what policy_candidate.yaml and the registry take
    assert report["best_value_tuning"] == pytest.approx(chosen["tuning_value"], abs=0.01)
    study = optuna.load_study(study_name=report["study"],
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(out / "optuna" / "studies.journal"))))
    tuning = sorted((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
    assert [f["trial"] for f in sel["finalists"]] == [t.number for t in tuning[:3]]
    candidate = (tmp_path / "sweep" / "policy_candidate.yaml").read_text()
    assert f"gamma: {chosen['params']['policy.gamma']}" in candidate
    assert f"trial {sel['chosen_trial']}, chosen by the selection stage" in \
        (tmp_path / "sweep" / "report.md").read_text()


def test_the_sweeps_mlflow_run_names_the_chosen_trial_beside_the_studys_best(tmp_path: Path) -> None:
    from experiment.tracking.callback import _candidate_tags

    assert _candidate_tags(tmp_path) == {}  # no report
    (tmp_path / "report.json").write_text(json.dumps({"selection": None}))
    assert _candidate_tags(tmp_path) == {}  # the stage was off: the best trial is the candidate
    (tmp_path / "report.json").write_text(json.dumps({"selection": {
        "chosen_trial": 7, "chosen_params": {"policy.gamma": 0.93, "policy.max_wait_min": 30.0}}}))
    assert _candidate_tags(tmp_path) == {
        "navitune.candidate_trial": "7",
        "navitune.candidate_params": '{"policy.gamma": 0.93, "policy.max_wait_min": 30.0}'}
