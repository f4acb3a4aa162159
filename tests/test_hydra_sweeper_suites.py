"""Hydra's generic test suites and hydra-optuna-sweeper's own tests, run against ``optuna_async``.

* ``hydra.test_utils.launcher_common_tests.IntegrationTestSuite`` applies to any sweeper (job names, sweep
  directories, the original cwd, ``to_absolute_path`` in a multirun): run with ``-m
  hydra/sweeper=optuna_async`` and one trial. Its task returns None, which no Optuna sweeper can record
  (upstream's fails the trial too): the generated task is given ``return 0.0`` and is otherwise unchanged.
* ``BatchedSweeperTestSuite`` does not apply: it asserts the basic sweeper's ordered cartesian batches and the
  ``JobReturn`` lists it returns; an Optuna sweeper samples and returns None (as hydra-optuna-sweeper does).
  ``LauncherTestSuite`` tests launchers (under the basic sweeper): it belongs to the launchers' tests.
* hydra-optuna-sweeper's tests (``tests/test_optuna_sweeper_plugin.py`` upstream), written again here on
  this repository's copies of its examples (``tests/sweeper_apps``), with the sweeper name changed: each
  makes the same checks as upstream's.

Every test is bounded (pytest-timeout, and a timeout on each subprocess): a sweep that does not end fails.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import optuna
import pytest
from hydra.core.plugins import Plugins
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite
from hydra.test_utils.test_utils import TSweepRunner

from tests.test_optuna_async_sweeper import job_overrides, run

Plugins.instance()  # discover plugins before a test changes the search path (see hydra's test docs)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ONE_TRIAL = ["-m", "hydra/sweeper=optuna_async", "hydra/launcher=basic", "hydra.sweeper.n_trials=1",
             "hydra.sweeper.n_jobs=1", "hydra.sweeper.progress=false"]


# ============================================================================ Hydra's generic suite
def _returning_a_number(cmd: list[str], filename: str) -> list[str]:
    """Hydra's integration task returns None; an Optuna sweeper needs a number: add ``return 0.0``."""
    task = Path(filename)  # the suite runs this in the task's directory
    text = task.read_text()
    if "return 0.0" not in text:
        text = text.replace('\n\nif __name__ == "__main__":', '\n    return 0.0\n\nif __name__ == "__main__":', 1)
        assert "return 0.0" in text, text
        task.write_text(text)
    return cmd


@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [({}, ONE_TRIAL)])
class TestOptunaAsyncIntegration(IntegrationTestSuite):
    def generate_custom_cmd(self) -> Callable[..., list[str]]:
        return _returning_a_number


def test_integration_task_returning_none_ends_in_one_line(tmp_path: Path) -> None:
    """The suite's task unchanged (it returns None): the one trial fails for good and the sweep ends."""
    import subprocess

    (tmp_path / "config.yaml").write_text("# @package _global_\n{}\n")
    (tmp_path / "task.py").write_text(
        "import hydra\n\n@hydra.main(config_path='.', config_name='config')\ndef experiment(cfg):\n"
        "    pass\n\nif __name__ == '__main__':\n    experiment()\n")
    done = subprocess.run([sys.executable, "task.py", *ONE_TRIAL], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("[I ")]
    assert len(lines) == 1 and "returned None" in lines[0], done.stderr
    assert len(list((tmp_path / "multirun").glob("*/*/*/.hydra"))) == 1


# ================================================================ hydra-optuna-sweeper's own tests
def test_launch_jobs(hydra_sweep_runner: TSweepRunner) -> None:
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        config_path="configs",
        config_name="compose.yaml",
        task_function=None,
        overrides=["hydra/sweeper=optuna_async", "hydra/launcher=basic", "hydra.sweeper.n_trials=8",
                   "hydra.sweeper.n_jobs=3", "hydra.sweeper.progress=false"],
    )
    with sweep:
        assert sweep.returns is None


@pytest.mark.parametrize("with_commandline", [True, False])
def test_optuna_example(with_commandline: bool, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    args = ["hydra.job.chdir=True", "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=1",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=test-optuna-example",
            "hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=123"]
    if with_commandline:
        args += ["x=choice(0, 1, 2)", "y=0"]  # y: a fixed parameter
    done = run("sphere", tmp_path, "sweep", *args)
    assert done.rc == 0, done
    returns = done.results
    best = optuna.load_study(storage=storage, study_name="test-optuna-example").best_trial
    assert returns["name"] == "optuna"
    assert returns["best_params"]["x"] == best.params["x"]
    if with_commandline:
        assert "y" not in returns["best_params"] and "y" not in best.params
    else:
        assert returns["best_params"]["y"] == best.params["y"]
    assert returns["best_value"] == best.value
    assert returns["best_value"] <= 2.27  # upstream's bound for TPE on this problem (95th percentile of seeds)


@pytest.mark.parametrize("num_trials", [10, 1])
def test_example_with_grid_sampler(tmp_path: Path, num_trials: int) -> None:
    storage = f"sqlite:///{tmp_path / 'test.db'}"
    done = run("sphere", tmp_path, "sweep", "hydra/sweeper/sampler=grid", "hydra.job.chdir=False",
               f"hydra.sweeper.n_trials={num_trials}", "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage={storage}",
               "hydra.sweeper.study_name=test-grid-sampler", "x=choice(-1, 1)", "y=range(-1.0, 1.0, step=1)",
               "+z=choice(foo, bar)")
    assert done.rc == 0, done
    returns = done.results
    bv, bx, by, bz = (returns["best_value"], returns["best_params"]["x"], returns["best_params"]["y"],
                      returns["best_params"]["+z"])
    if num_trials >= 12:
        assert bv == 1 and abs(bx) == 1 and by == 0
    else:
        assert bx in [-1, 1] and by in [-1, 0]
    assert bz in ["foo", "bar"]


def _dominates(x: list[float], y: list[float]) -> bool:
    return all(a <= b for a, b in zip(x, y)) and any(a < b for a, b in zip(x, y))


@pytest.mark.parametrize("with_commandline", [True, False])
def test_optuna_multi_objective_example(with_commandline: bool, tmp_path: Path) -> None:
    args = ["hydra.job.chdir=True", "hydra.sweeper.n_trials=20", "hydra.sweeper.n_jobs=1",
            "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123"]
    if with_commandline:
        args += ["x=range(0, 5)", "y=range(0, 3)"]
    done = run("multi_objective", tmp_path, "sweep", *args)
    assert done.rc == 0, done
    returns = done.results
    assert returns["name"] == "optuna"
    steps = {0} if with_commandline else {0, 0.5}
    for trial_x in returns["solutions"]:
        assert trial_x["params"]["x"] % 1 in steps and trial_x["params"]["y"] % 1 in steps
        for trial_y in returns["solutions"]:
            assert not _dominates(trial_x["values"], trial_y["values"])


def test_optuna_custom_search_space_example(tmp_path: Path) -> None:
    done = run("custom_space", tmp_path, "sweep", "hydra.job.chdir=True", "hydra.sweeper.n_trials=20",
               "hydra.sweeper.n_jobs=1", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123",
               "max_z_difference_from_x=0.3")
    assert done.rc == 0, done
    returns = done.results
    assert returns["name"] == "optuna"
    assert abs(returns["best_params"]["x"] - returns["best_params"]["z"]) <= 0.3
    assert 0 <= returns["best_params"]["w"] <= 1


@pytest.mark.parametrize("max_failure_rate", [0.5, 1.0])
def test_failure_rate(max_failure_rate: float, tmp_path: Path) -> None:
    """Upstream's checks (the job's error is reported unless every failure is tolerated), plus: the sweep
    ends (it fails: no trial can complete) with one line and no traceback."""
    done = run("sphere", tmp_path, "sweep", "hydra.job.chdir=True", "hydra.sweeper.n_trials=20",
               "hydra.sweeper.n_jobs=2", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=123",
               f"hydra.sweeper.max_failure_rate={max_failure_rate}", "error=true", timeout=180.0)
    error_string = "RuntimeError: cfg.error is True"
    if max_failure_rate < 1.0:
        assert error_string in done.stderr, done
    else:
        assert error_string not in done.stderr, done
    assert done.rc != 0 and "Traceback" not in done.stderr, done
    allowed = int(max_failure_rate * 20)
    assert len(job_overrides(done.sweep_dir)) <= 2 * (allowed + 1) + 3  # two attempts each, + those in flight


# ============================================================== the two endless sweeps, now bounded
def test_one_value_for_two_objectives_ends(tmp_path: Path) -> None:
    done = run("sphere", tmp_path, "sweep", "hydra.sweeper.direction=[minimize,minimize]",
               "hydra.sweeper.n_trials=2", timeout=60.0)
    assert done.rc != 0 and "takes 2 numbers" in done.stderr, done
    assert len(job_overrides(done.sweep_dir)) <= 3  # the failing job and those in flight: no retry


def test_text_result_ends(tmp_path: Path) -> None:
    done = run("bad_return", tmp_path, "sweep", "returns=text", "hydra.sweeper.n_trials=1", timeout=60.0)
    assert done.rc != 0 and "returned 'foo'" in done.stderr, done
    assert len(job_overrides(done.sweep_dir)) == 1
