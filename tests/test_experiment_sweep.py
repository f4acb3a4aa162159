"""The navitune sweep end to end: `python -m experiment -m` with the optuna_async sweeper, the
process_pool launcher, the navi3 search space, daily pruning and the production baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from experiment.config import production_policy

ROOT = Path(__file__).resolve().parent.parent


def sweep(tmp_path: Path, *overrides: str, preflight: bool = True) -> subprocess.CompletedProcess:
    """``python -m experiment -m ...``; ``preflight=False`` runs the Hydra task without the CLI's checks, as a
    sweep started by other tooling would (the jobs still check their own config)."""
    entry = ["-m", "experiment"] if preflight else ["-c", "from experiment.task import task; task()"]
    cmd = [sys.executable, *entry, "-m", f"paths.outputs={tmp_path / 'outputs'}", *overrides]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)


def load(tmp_path: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "outputs" / "optuna" / "studies.journal"
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))


@pytest.mark.slow
def test_a_null_pruner_prunes_nothing(tmp_path: Path) -> None:
    """``hydra.sweeper.pruner=null`` means no pruning, in the sweeper and in the jobs: Optuna would otherwise put
    its own MedianPruner (5 start-up trials, no warm-up) in the place of None, and the same sweep prunes."""
    proc = sweep(
        tmp_path,
        "window.start=2026-06-01", "window.end=2026-06-04", "window.name=three_days",
        "hydra.sweeper.n_trials=10", "hydra.sweeper.study_name=no_prune", "hydra.sweeper.pruner=null",
        "hydra.sweeper.sampler.n_startup_trials=6", "hydra.callbacks.report.enabled=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(tmp_path, "no_prune").get_trials(deepcopy=False)
    assert len(trials) == 10 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(len(t.intermediate_values) == 2 for t in trials)  # every day reported, none stopped early
    from hydra_plugins.navitune_optuna.pruning import make_pruner

    assert isinstance(make_pruner(None), optuna.pruners.NopPruner)
    assert isinstance(make_pruner({"_target_": "optuna.pruners.MedianPruner"}), optuna.pruners.MedianPruner)


@pytest.mark.slow
def test_sweep_prunes_poor_trials_and_beats_production(tmp_path: Path) -> None:
    """Three operating days, 14 trials: the baseline runs first, the median pruner stops poor trials
    after a day or two (they simulate fewer days), and the best trial beats production."""
    proc = sweep(
        tmp_path,
        "window.start=2026-06-01", "window.end=2026-06-04", "window.name=three_days",
        "hydra.sweeper.n_trials=14", "hydra.sweeper.study_name=prune_test",
        "hydra.sweeper.pruner.n_startup_trials=3", "hydra.sweeper.pruner.n_warmup_steps=0",
        "hydra.sweeper.sampler.n_startup_trials=6",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(tmp_path, "prune_test")
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 14
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    baseline = trials[0]
    prod = production_policy()
    assert baseline.params == {"policy.gamma": prod["gamma"], "policy.max_wait_min": prod["max_wait_min"],
                               "policy.road_weights.right": prod["road_weights"]["right"]}
    assert baseline.state == optuna.trial.TrialState.COMPLETE
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    # a value is reported after each day but the last; a pruned trial stopped after its last report
    assert all(len(t.intermediate_values) <= 2 for t in pruned)  # at most 2 of the 3 days simulated
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == 2 for t in complete)
    assert study.best_value > baseline.value  # tuning found better than production

    sweep_dir = next((tmp_path / "outputs" / "sweeps").glob("*/*"))
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_value == pytest.approx(study.best_value)
    best_policy = OmegaConf.load(sweep_dir / "best_policy.yaml")
    assert best_policy.defaults == ["production", "_self_"]
    assert best_policy.gamma == pytest.approx(study.best_params["policy.gamma"])
    # the best trial's own summary agrees with the study
    summaries = [json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")]
    assert max(s["objective"] for s in summaries) == pytest.approx(study.best_value)

    # re-running the finished sweep adds nothing
    again = sweep(
        tmp_path,
        "window.start=2026-06-01", "window.end=2026-06-04", "window.name=three_days",
        "hydra.sweeper.n_trials=14", "hydra.sweeper.study_name=prune_test",
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(load(tmp_path, "prune_test").get_trials(deepcopy=False)) == len(trials)


@pytest.mark.slow
def test_a_trial_with_a_bad_value_fails_alone_with_one_line(tmp_path: Path) -> None:
    """A trial whose value the task rejects fails (retried once, then for good) with the task's one-line
    error; the rest of the sweep is unaffected and ends at the budget. The CLI refuses such a baseline before
    the first trial; a sweep started without its preflight meets the job's own check."""
    args = ("window=smoke", "hydra.sweeper.n_trials=3", "hydra.sweeper.study_name=bad_value",
            "hydra.sweeper.max_retries=1", "hydra.sweeper.max_failure_rate=0.5",
            "hydra.sweeper.enqueue=[{policy.gamma: 1.5, policy.max_wait_min: 3.0, policy.road_weights.right: 2.0}]")
    refused = sweep(tmp_path, *args)
    assert refused.returncode != 0 and refused.stderr.strip() == (
        "navitune: invalid hydra.sweeper.enqueue[0]: policy.gamma=1.5; allowed: 0 <= gamma < 1")
    assert not (tmp_path / "outputs").exists()
    proc = sweep(tmp_path, *args, preflight=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(tmp_path, "bad_value").get_trials(deepcopy=False)
    bad = [t for t in trials if t.params["policy.gamma"] == 1.5]
    assert [t.state for t in bad] == [optuna.trial.TrialState.FAIL] * 2  # first try and one retry
    assert bad[1].user_attrs["navitune:retry_of"] == bad[0].number
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 3
    assert "navitune: invalid config policy.gamma=1.5; allowed: 0 <= gamma < 1" in proc.stdout + proc.stderr
