"""The process-pool launcher's fast paths give exactly what Hydra's own code gives.

* ``parse_simple`` vs Hydra's ANTLR override parser, on the overrides a sweeper writes and on near misses;
* ``SweepConfigFactory.load`` vs ``ConfigLoader.load_sweep_config``, on navitune's config and a generic app;
* ``run_job_in_fork`` vs ``hydra.core.utils.run_job``: the same ``.hydra`` files, log file and JobReturn.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus, run_job, setup_globals
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.navitune_process_pool._job_runner import run_job_in_fork
from hydra_plugins.navitune_shared.sweep_config import SweepConfigFactory, parse_simple

ROOT = Path(__file__).resolve().parent.parent
BENCH_APP = ROOT / "benchmarks" / "apps"
NAVITUNE_CONF = ROOT / "conf"
STAMP = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\]", re.M)  # log lines start with their time
FRAMES = re.compile(r"^  .*\n", re.M)  # traceback frames differ: the runners are different functions

SIMPLE = [
    "x=0.417022004702574", "x=-3", "x=+3", "x=0", "x=1e-05", "x=1.2345e-05", "x=-2.5E+3", "x=.5", "x=5.",
    "policy.gamma=0.93", "policy.road_weights.right=2", "++hydra.job.env_set.NAVITUNE_OPTUNA_STUDY=navi3",
    "++hydra.job.env_set.NAVITUNE_OPTUNA_TRIAL=12", "+new_key=word_1", "region=tokyo_central",
]
NOT_SIMPLE = [  # left to Hydra's parser: other types, quoting, sweeps, deletions, groups with packages
    "x=true", "x=False", "x=null", "x=inf", "x=-nan", "x=007", "x='0.5'", "x=a b", "x=a,b", "x=choice(1,2)",
    "~x", "~x=1", "db@pkg=mysql", "hydra/launcher=basic", "x=[1,2]", "x={a:1}", "x=${y}", "x=1_000", "x=a-b",
    "x=", "x=0x10",
]


@pytest.mark.parametrize("line", SIMPLE)
def test_parse_simple_equals_hydras_parser(line: str) -> None:
    ours = parse_simple(line)
    hydras = OverridesParser.create().parse_overrides([line])[0]
    assert ours is not None, line
    assert (ours.type, ours.key_or_group, ours.value_type, ours.package, ours.input_line) == (
        hydras.type, hydras.key_or_group, hydras.value_type, hydras.package, hydras.input_line)
    assert type(ours.value()) is type(hydras.value()) and ours.value() == hydras.value()


@pytest.mark.parametrize("line", NOT_SIMPLE)
def test_parse_simple_leaves_the_rest_to_hydra(line: str) -> None:
    assert parse_simple(line) is None


def _master(config_dir: Path, overrides: list[str]) -> tuple[Any, DictConfig]:
    loader = GlobalHydra.instance().config_loader()
    return loader, loader.load_configuration("config", overrides, RunMode.MULTIRUN)


CASES = [
    (BENCH_APP, ["hydra.sweep.dir=/tmp/fast", "out_dir=/tmp/fast/jobs", "noop=true", "hydra/sweeper=optuna_async",
                 "hydra/launcher=process_pool", "hydra.sweeper.n_trials=7"],
     ["x=0.25", "mean_s=1e-05", "++hydra.job.env_set.NAVITUNE_OPTUNA_TRIAL=3", "++hydra.job.env_set.K=v"]),
    (NAVITUNE_CONF, ["hydra/launcher=process_pool", "window=smoke"],
     ["policy.gamma=0.91", "policy.max_wait_min=4", "policy.road_weights.right=2.5",
      "++hydra.job.env_set.NAVITUNE_OPTUNA_STUDY=s"]),
    (NAVITUNE_CONF, ["window=smoke"], ["region=ring_city", "policy.gamma=0.9", "+experiment=smoke",
                                       "++hydra.job.env_set.K=v", "policy.max_wait_min=2"]),  # groups too
    (NAVITUNE_CONF, ["window=smoke"], ["policy.gamma=true"]),  # an invalid value: both must refuse
]


@pytest.mark.parametrize(("config_dir", "master_overrides", "job_overrides"), CASES)
def test_sweep_config_factory_equals_load_sweep_config(
    config_dir: Path, master_overrides: list[str], job_overrides: list[str]
) -> None:
    if config_dir == NAVITUNE_CONF:
        from experiment.registration import register_configs

        register_configs()
    with initialize_config_dir(config_dir=str(config_dir), ):
        loader, master = _master(config_dir, master_overrides)
        try:
            expected = loader.load_sweep_config(master, job_overrides)
        except Exception as err:
            with pytest.raises(type(err)):
                SweepConfigFactory(loader, master).load(job_overrides)
            return
        factory = SweepConfigFactory(loader, master)
        for private in (False, True):
            got = factory.load(job_overrides, private=private)
            assert any(isinstance(b, DictConfig) for b in factory._bases.values())  # the fast path was taken
            assert OmegaConf.to_container(got, resolve=False) == OmegaConf.to_container(expected, resolve=False)
            assert OmegaConf.is_struct(got) == OmegaConf.is_struct(expected)
            assert OmegaConf.get_type(got, "hydra") is OmegaConf.get_type(expected, "hydra")


def _run_in_fork(runner: str, config: DictConfig, loader: Any, fail: bool) -> dict:
    """Run a job with ``runner`` in a forked process (as the launcher does); return what it observed."""
    recv, send = mp.get_context("fork").Pipe(duplex=False)

    def task(cfg: DictConfig) -> float:
        import logging

        logging.getLogger("fastpath").info("hello from the task")
        if fail:
            raise ValueError("boom")
        return float(cfg.x) * 2

    def child() -> None:
        setup_globals()
        ctx = HydraContext(config_loader=loader, callbacks=None)
        from hydra._internal.callbacks import Callbacks

        ctx = HydraContext(config_loader=loader, callbacks=Callbacks(config))
        if runner == "hydra":
            ret = run_job(hydra_context=ctx, task_function=task, config=config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        else:
            ret = run_job_in_fork(ctx, task, config)
        value = ret._return_value
        send.send_bytes(pickle.dumps({
            "status": ret.status, "value": value if ret.status == JobStatus.COMPLETED else repr(value),
            "cfg": OmegaConf.to_container(ret.cfg), "hydra_cfg": OmegaConf.to_yaml(ret.hydra_cfg),
            "overrides": ret.overrides, "working_dir": ret.working_dir, "task_name": ret.task_name,
        }))

    proc = mp.get_context("fork").Process(target=child)
    proc.start()
    out = pickle.loads(recv.recv_bytes())
    proc.join()
    return out


@pytest.mark.parametrize("fail", [False, True], ids=["completes", "raises"])
def test_run_job_in_fork_equals_run_job(tmp_path: Path, fail: bool) -> None:
    results, files = {}, {}
    with initialize_config_dir(config_dir=str(BENCH_APP), ):
        for runner in ("hydra", "fork"):
            sweep_dir = tmp_path / "sweep"  # the same directory, one after the other: identical paths
            loader, master = _master(BENCH_APP, [f"hydra.sweep.dir={sweep_dir}", f"out_dir={tmp_path}",
                                                 "noop=true", "hydra.job.chdir=true"])
            config = loader.load_sweep_config(master, ["x=0.5", "++hydra.job.env_set.FASTPATH=1"])
            with open_dict(config):
                config.hydra.job.id, config.hydra.job.num = "3", 3
            results[runner] = _run_in_fork(runner, config, loader, fail)
            job_dir = sweep_dir / "3"
            files[runner] = {p.relative_to(job_dir).as_posix(): FRAMES.sub("", STAMP.sub("[time]", p.read_text()))
                             for p in job_dir.rglob("*") if p.is_file()}
            for p in sorted(job_dir.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
    assert results["fork"] == results["hydra"]
    assert results["hydra"]["status"] == (JobStatus.FAILED if fail else JobStatus.COMPLETED)
    assert set(files["hydra"]) >= {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
    assert files["fork"] == files["hydra"]
    log = next(text for name, text in files["hydra"].items() if name.endswith(".log"))
    assert "hello from the task" in log and ("boom" in log) == fail
