"""The sweeper-launcher-job contract (``hydra_plugins.navitune_shared.protocol``): the real plugins declare the
abilities the sweeper looks for, and a job reads its trial back from the environment the sweeper sets."""

from __future__ import annotations

import pytest

from hydra_plugins.navitune_shared.protocol import (
    ENV_ATTEMPT, ENV_ORIGIN, ENV_STUDY, ENV_TRIAL, AsyncLauncher, CompilingLauncher, PreparingLauncher, TrialContext,
)


def test_the_process_pool_launcher_runs_jobs_one_by_one_and_prepares_ahead() -> None:
    from hydra_plugins.navitune_process_pool.process_pool_launcher import ProcessPoolLauncher

    launcher = ProcessPoolLauncher(n_jobs=2)
    assert isinstance(launcher, AsyncLauncher) and isinstance(launcher, PreparingLauncher)
    assert not isinstance(launcher, CompilingLauncher)
    assert launcher.prepared == 0 and launcher.prepare_ahead == 1


def test_the_kfp_launcher_runs_jobs_one_by_one_prepares_ahead_and_may_only_compile() -> None:
    from hydra_plugins.navitune_kfp.kfp_launcher import KFPLauncher

    launcher = KFPLauncher(backend="local", compile_only=True)
    assert isinstance(launcher, AsyncLauncher) and isinstance(launcher, CompilingLauncher)
    # jobs composed ahead wait for one of its n_jobs threads: the sweeper asks prepare_ahead trials ahead
    assert isinstance(launcher, PreparingLauncher)
    assert launcher.prepared == 0 and launcher.n_jobs == 2 and launcher.prepare_ahead == 1
    assert KFPLauncher(backend="local", n_jobs=100, prepare_ahead=0).prepare_ahead == 0
    assert launcher.compile_only is True


def test_hydras_basic_launcher_has_no_async_ability() -> None:
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    assert not isinstance(BasicLauncher(), AsyncLauncher)


def test_a_job_reads_its_trial_from_the_sweepers_environment() -> None:
    env = {ENV_STUDY: "s1", ENV_TRIAL: "12", ENV_ATTEMPT: "1", ENV_ORIGIN: "7"}
    ctx = TrialContext.from_env(env)
    assert ctx == TrialContext(study="s1", trial=12, attempt=1, origin_trial=7) and ctx.in_sweep
    assert ctx.as_dict() == {"study": "s1", "trial": 12, "attempt": 1, "origin_trial": 7}


def test_a_single_run_has_no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_STUDY, ENV_TRIAL, ENV_ATTEMPT, ENV_ORIGIN):
        monkeypatch.delenv(name, raising=False)
    ctx = TrialContext.from_env()
    assert ctx == TrialContext() and not ctx.in_sweep
    assert TrialContext.from_env({ENV_STUDY: "", ENV_TRIAL: ""}) == TrialContext()  # empty means unset
