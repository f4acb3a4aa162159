"""Benchmark ``kfp``: the Kubeflow Pipelines launcher (``python -m experiment.bench kfp``).

Prints progress to stderr and one JSON object as the last stdout line:

* ``compile_s``: compiling the job pipeline (once per sweep), median of 5, kfp already imported
  (``kfp_import_s`` is the one-off import);
* ``submit_ms_median``: per job, from ``launcher.submit()`` to the run's create request arriving at the API
  (against ``tools/standins/kfp_api_server.FakeKFP``, a local stand-in for a KFP cluster): the job's config composition
  and YAML on the caller's thread, then the launcher's look for an existing run of that name and the create
  (``compose_ms_median`` and ``api_ms_median`` split it); 30 jobs with a trial's parameter overrides, one after
  the other (target <= 100 ms). ``submit_ms_median_group_override``: the same when the command also selects a
  config-group option (every job then takes Hydra's full composition);
* ``trials_per_min_local`` vs ``trials_per_min_process_pool``: the same small sweep of the app
  (``+experiment=smoke``, 6 trials, 2 at a time, same sampler seed, no MLflow tracking and no champion/challenger report) with ``hydra/launcher=kfp
  hydra.launcher.backend=local`` and with ``process_pool``; wall time of the whole command.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe

ROOT = Path(__file__).resolve().parents[1]
SUBMIT_JOBS = 30
SWEEP = {"n_trials": 6, "n_jobs": 2}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _compile_times(tmp: Path) -> dict:
    t0 = time.perf_counter()
    import kfp  # noqa: F401

    from hydra_plugins.navitune_kfp.pipeline import compile_pipeline
    from hydra_plugins.navitune_kfp.settings import check

    import_s = time.perf_counter() - t0
    settings = check({
        "image": "us-docker.pkg.dev/acme/sim/navitune-job:0.1.0",
        "cpu_request": "1", "cpu_limit": "1", "memory_request": "2Gi", "memory_limit": "2Gi",
        "node_selector": {"cloud.google.com/gke-nodepool": "simulators"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "simulators", "effect": "NoSchedule"}],
        "secrets": [{"secret_name": "navitune-db", "secret_key_to_env": {"password": "NAVITUNE_DB_PASSWORD"}}],
    })
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        compile_pipeline(settings, "navitune-bench", "bench", tmp / f"p{i}.yaml")
        times.append(time.perf_counter() - t0)
    return {"compile_s": statistics.median(times), "compile_s_runs": [round(t, 4) for t in times],
            "kfp_import_s": import_s}


def _submit_times(tmp: Path, group_override: bool) -> dict:
    """Jobs as the optuna_async sweeper hands them over (the command's task overrides, the trial's parameters,
    its env_set); with ``group_override`` the command also selects a config-group option (+experiment=smoke),
    so every job is composed by Hydra in full."""
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext

    import experiment.task as app
    from tools.standins.kfp_api_server import FakeKFP

    task_overrides = [f"paths.outputs={tmp / 'outputs'}"] + (["+experiment=smoke"] if group_override else [])
    with FakeKFP() as server:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=app.CONF_DIR):
            cfg = compose("config", overrides=[
                "hydra/launcher=kfp", "hydra.launcher.backend=remote", f"hydra.launcher.host={server.url}",
                "hydra.launcher.poll_interval=600", f"hydra.launcher.n_jobs={SUBMIT_JOBS}",
                f"hydra.sweep.dir={tmp / ('submit-group' if group_override else 'submit')}",
                "hydra.sweeper.storage=mysql+pymysql://bench:${oc.env:BENCH_DB_PASSWORD,unset}@127.0.0.1:9/optuna",
                "hydra.sweeper.study_name=bench", *task_overrides,
            ], return_hydra_config=True)
            ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks())
            setup_globals()
            launcher = Plugins.instance().instantiate_launcher(config=cfg, hydra_context=ctx,
                                                               task_function=app.task.__wrapped__)
            # no NAVITUNE_OPTUNA_* env_set: the jobs are no trials of a reachable study here (the study lookup a
            # trial adds happens once per sweep)
            total, compose_ms, api_ms = [], [], []
            for i in range(SUBMIT_JOBS):
                overrides = [f"policy.gamma={0.9 + i / 1000}", f"policy.max_wait_min={3 + i / 10}",
                             f"policy.road_weights.right={2 + i / 10}", *task_overrides]
                t0 = time.monotonic()
                launcher.submit(overrides, i)
                t_submitted = time.monotonic()
                while len(server.calls("POST", "/apis/v2beta1/runs")) < i + 1:
                    time.sleep(0.0005)
                created = server.calls("POST", "/apis/v2beta1/runs")[-1].at
                looked = [r.at for r in server.calls("GET", "/apis/v2beta1/runs") if r.at >= t_submitted]
                total.append((created - t0) * 1000)
                compose_ms.append((t_submitted - t0) * 1000)
                api_ms.append((created - (looked[0] if looked else t_submitted)) * 1000)
            launcher.shutdown()  # the runs stay PENDING on the stand-in: their waits end here
        GlobalHydra.instance().clear()
    return {"submit_ms_median": statistics.median(total), "submit_ms_p90": sorted(total)[int(0.9 * len(total))],
            "compose_ms_median": statistics.median(compose_ms), "api_ms_median": statistics.median(api_ms)}


def _sweep(tmp: Path, launcher: str) -> dict:
    work = tmp / f"sweep-{launcher}"
    work.mkdir()
    cmd = [sys.executable, "-m", "experiment", "-m", f"hydra/launcher={launcher}", f"paths.outputs={work / 'outputs'}",
           "+experiment=smoke", f"hydra.sweeper.n_trials={SWEEP['n_trials']}", f"hydra.sweeper.n_jobs={SWEEP['n_jobs']}",
           f"hydra.launcher.n_jobs={SWEEP['n_jobs']}", "hydra.sweeper.study_name=bench", "hydra.sweeper.progress=false",
           "tracking=off", "hydra.callbacks.report.enabled=false"]  # the launchers' costs, not MLflow's or the report's
    if launcher == "kfp":
        cmd.append("hydra.launcher.backend=local")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sweep with {launcher} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "trials_per_min": SWEEP["n_trials"] / wall * 60}


def bench_kfp() -> dict:
    with tempfile.TemporaryDirectory(prefix="navitune-bench-kfp-") as tmp_name:
        tmp = Path(tmp_name)
        _log("compiling the job pipeline (5 times) ...")
        comp = _compile_times(tmp)
        _log(f"  {comp['compile_s'] * 1000:.0f} ms (kfp import {comp['kfp_import_s']:.2f} s)")
        _log(f"submitting {SUBMIT_JOBS} jobs to a local KFP API stand-in ...")
        sub = _submit_times(tmp, group_override=False)
        _log(f"  median {sub['submit_ms_median']:.1f} ms (compose {sub['compose_ms_median']:.1f} ms, "
             f"API {sub['api_ms_median']:.1f} ms)")
        _log(f"the same, the command selecting a config-group option (+experiment=smoke) ...")
        sub_group = _submit_times(tmp, group_override=True)
        _log(f"  median {sub_group['submit_ms_median']:.1f} ms (compose {sub_group['compose_ms_median']:.1f} ms)")
        sweeps = {}
        for launcher in ("kfp", "process_pool"):
            _log(f"sweep of {SWEEP['n_trials']} smoke trials, {SWEEP['n_jobs']} at a time, hydra/launcher={launcher} ...")
            sweeps[launcher] = _sweep(tmp, launcher)
            _log(f"  {sweeps[launcher]['wall_s']:.1f} s, {sweeps[launcher]['trials_per_min']:.1f} trials/min")
    return {
        "bench": "kfp",
        "compile_s": round(comp["compile_s"], 4),
        "compile_s_runs": comp["compile_s_runs"],
        "kfp_import_s": round(comp["kfp_import_s"], 3),
        "submit_ms_median": round(sub["submit_ms_median"], 1),
        "submit_ms_p90": round(sub["submit_ms_p90"], 1),
        "compose_ms_median": round(sub["compose_ms_median"], 1),
        "api_ms_median": round(sub["api_ms_median"], 1),
        "submit_ms_median_group_override": round(sub_group["submit_ms_median"], 1),
        "trials_per_min_local": round(sweeps["kfp"]["trials_per_min"], 1),
        "trials_per_min_process_pool": round(sweeps["process_pool"]["trials_per_min"], 1),
        "sweep_wall_s": {k: round(v["wall_s"], 1) for k, v in sweeps.items()},
        "sweep": SWEEP | {"experiment": "smoke"},
        "targets": {"submit_ms_median": 100.0},
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    print(json.dumps(bench_kfp()))
