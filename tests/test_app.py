"""End-to-end single runs: the CLI on the smoke window, summary.json, the DuckDB rows, determinism, overrides.

Every CLI run is a real ``python -m experiment ...`` subprocess with ``cwd`` a fresh tmp dir and
``paths.outputs`` pointing into it, so nothing lands in the repository. The runs of this module are
started together in a small thread pool (each is a CPU-bound ~2 s start-up plus simulation).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore

import experiment.__main__  # noqa: F401  (registers the schema exactly as the CLI does)
from experiment.app import run
from experiment.config import ConfigError, production_policy
from experiment.registration import register_configs

if "navitune_schema.yaml" not in ConfigStore.instance().repo:
    register_configs()

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
CLI_TIMEOUT_S = 180
SMOKE = ("window=smoke",)

CONTRACT_KEYS = (
    "objective", "revenue_per_driver_day_yen", "revenue_per_driver_shift_yen", "occupancy_distance",
    "trips_per_driver_shift", "mean_fare_yen", "params", "region", "window", "demand_source", "seed",
)

# name -> the overrides of one CLI run (each in its own cwd and outputs dir)
RUNS: dict[str, tuple[str, ...]] = {
    "base": SMOKE,
    "repeat": SMOKE,
    "seed8": SMOKE + ("window.seed=8",),
    "gamma": SMOKE + ("policy.gamma=0.5",),
    "stats": SMOKE + ("demand=stats",),
    "random_cruise": SMOKE + ("policy=random_cruise",),
    "experiment_smoke": ("+experiment=smoke",),
}
# two runs, one after the other, into the same outputs dir (the DuckDB file accumulates runs)
SHARED_STORE = (SMOKE, SMOKE + ("policy=random_cruise",))


@dataclass
class Run:
    proc: subprocess.CompletedProcess
    cwd: Path
    outputs: Path

    @property
    def run_dirs(self) -> list[Path]:
        runs = self.outputs / "runs"
        return sorted(p for p in runs.glob("*/*") if p.is_dir()) if runs.exists() else []

    @property
    def summary(self) -> dict:
        (run_dir,) = self.run_dirs
        return json.loads((run_dir / "summary.json").read_text())

    @property
    def db(self) -> Path:
        return self.outputs / "results.duckdb"


def run_cli(cwd: Path, overrides: tuple[str, ...], outputs: Path | None = None) -> Run:
    outputs = outputs or cwd / "outputs"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "experiment", *overrides, f"paths.outputs={outputs}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    return Run(proc, cwd, outputs)


def run_shared_store(cwd: Path) -> list[Run]:
    return [run_cli(cwd, overrides) for overrides in SHARED_STORE]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(name)`` waits for the CLI run ``name`` of :data:`RUNS` (all started at the first use)."""
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    futures: dict[str, Future] = {
        name: pool.submit(run_cli, tmp_path_factory.mktemp(name), overrides) for name, overrides in RUNS.items()
    }
    futures["shared_store"] = pool.submit(run_shared_store, tmp_path_factory.mktemp("shared_store"))
    yield lambda name: futures[name].result()
    pool.shutdown(wait=True, cancel_futures=True)


def ok(r: Run) -> Run:
    assert r.proc.returncode == 0, f"exit {r.proc.returncode}\nstderr:\n{r.proc.stderr[-3000:]}"
    return r


def days(summary: dict) -> int:
    w = summary["window"]
    return (dt.date.fromisoformat(w["end"]) - dt.date.fromisoformat(w["start"])).days


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------- base run
@pytest.mark.slow
def test_exit_zero_and_one_run_directory(runs):
    r = ok(runs("base"))
    assert len(r.run_dirs) == 1, r.run_dirs
    (run_dir,) = r.run_dirs
    assert run_dir.parent.parent == r.outputs / "runs"
    assert run_dir.name.endswith("-tokyo_central-production"), run_dir
    assert (run_dir / "summary.json").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert not (r.outputs / "sweeps").exists()
    assert sorted(p.name for p in r.cwd.iterdir()) == ["outputs"], "the run wrote outside paths.outputs"
    # the results file, the run directories and the local MLflow store (tracking=local, the default)
    assert sorted(p.name for p in r.outputs.iterdir()) == ["mlartifacts", "mlflow.db", "results.duckdb", "runs"]


@pytest.mark.slow
def test_summary_contract(runs):
    s = ok(runs("base")).summary
    missing = [k for k in CONTRACT_KEYS if k not in s]
    assert not missing, missing
    for k in ("objective", "revenue_per_driver_day_yen", "revenue_per_driver_shift_yen", "occupancy_distance",
              "trips_per_driver_shift", "mean_fare_yen"):
        assert is_number(s[k]), (k, s[k])
    assert s["objective"] > 0
    assert 0 <= s["occupancy_distance"] <= 1
    assert s["trips_per_driver_shift"] > 0
    assert s["mean_fare_yen"] >= 500  # the Tokyo flag fall
    # a driver works at most one shift a day, so a shift earns at least a driver-day on average
    assert s["revenue_per_driver_shift_yen"] >= s["revenue_per_driver_day_yen"]
    assert s["revenue_per_driver_shift_yen"] == pytest.approx(
        s["trips_per_driver_shift"] * s["mean_fare_yen"], rel=1e-9
    )
    assert s["region"] == "tokyo_central"
    assert s["window"] == {"name": "smoke", "start": "2026-06-03", "end": "2026-06-04"}
    assert s["demand_source"] == "ml"
    assert isinstance(s["seed"], int) and not isinstance(s["seed"], bool) and s["seed"] == 7
    p = s["params"]
    assert isinstance(p, dict)
    assert p["policy"] == "production" and p["navigation"] is True
    prod = production_policy()  # conf/policy/production.yaml, flattened as the summary writes it
    assert {k: p[k] for k in ("gamma", "max_wait_min", "compliance")} == {
        k: prod[k] for k in ("gamma", "max_wait_min", "compliance")}
    assert {k: p[f"road_weights.{k}"] for k in prod["road_weights"]} == prod["road_weights"]
    assert s["drivers"] == 120


@pytest.mark.slow
def test_objective_is_revenue_per_driver_day(runs):
    s = ok(runs("base")).summary
    assert s["objective"] == s["revenue_per_driver_day_yen"]


@pytest.mark.slow
def test_duckdb_rows_match_summary(runs):
    r = ok(runs("base"))
    s = r.summary
    assert r.db.is_file()
    con = duckdb.connect(str(r.db), read_only=True)
    try:
        assert "driver_days" in {t for (t,) in con.execute("SHOW TABLES").fetchall()}
        n, mean_revenue, n_runs, n_keys = con.execute(
            "SELECT count(*), avg(revenue_yen), count(DISTINCT run_id), count(DISTINCT (driver, day)) FROM driver_days"
        ).fetchone()
        context = con.execute(
            "SELECT DISTINCT region::VARCHAR, \"window\"::VARCHAR, demand_source::VARCHAR, policy::VARCHAR, seed, "
            "params::VARCHAR, date::VARCHAR FROM driver_days"
        ).fetchall()
        worked = con.execute("SELECT count(*) FROM driver_days WHERE worked").fetchone()[0]
    finally:
        con.close()
    assert n_runs == 1
    assert n == s["drivers"] * days(s) == 120
    assert n_keys == n
    assert mean_revenue == pytest.approx(s["objective"], rel=1e-9)
    assert len(context) == 1
    region, window, demand_source, policy, seed, params, date = context[0]
    assert (region, window, demand_source, policy, seed, date) == (
        "tokyo_central", "smoke", "ml", "production", 7, "2026-06-03"
    )
    assert json.loads(params) == s["params"]
    assert 0 < worked <= n


@pytest.mark.slow
def test_console_log_line(runs):
    r = ok(runs("base"))
    lines = [ln for ln in r.proc.stdout.splitlines() if "yen/driver-day" in ln]
    assert len(lines) == 1, r.proc.stdout
    assert "tokyo_central | smoke | ml demand | production" in lines[0]
    assert f"{r.summary['objective']:,.0f} yen/driver-day" in lines[0]
    (run_dir,) = r.run_dirs
    assert "yen/driver-day" in (run_dir / "navitune.log").read_text()


# --------------------------------------------------------------------------------- more CLI runs
@pytest.mark.slow
def test_same_seed_same_objective(runs):
    a, b = ok(runs("base")).summary, ok(runs("repeat")).summary
    assert b["objective"] == a["objective"]
    drop = {"timings_s"}
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


@pytest.mark.slow
def test_other_seed_other_objective(runs):
    a, c = ok(runs("base")).summary, ok(runs("seed8")).summary
    assert c["seed"] == 8
    assert c["objective"] != a["objective"]


@pytest.mark.slow
def test_policy_override_reaches_the_run(runs):
    s = ok(runs("gamma")).summary
    assert s["params"]["gamma"] == 0.5
    assert s["objective"] != ok(runs("base")).summary["objective"]


@pytest.mark.slow
def test_demand_override_reaches_the_run(runs):
    r = ok(runs("stats"))
    assert r.summary["demand_source"] == "stats"
    con = duckdb.connect(str(r.db), read_only=True)
    try:
        assert con.execute("SELECT DISTINCT demand_source::VARCHAR FROM driver_days").fetchall() == [("stats",)]
    finally:
        con.close()


@pytest.mark.slow
def test_random_cruise_has_no_navigation(runs):
    r = ok(runs("random_cruise"))
    s = r.summary
    assert s["params"] == {"policy": "random_cruise", "navigation": False}
    (run_dir,) = r.run_dirs
    assert run_dir.name.endswith("-tokyo_central-random_cruise")
    assert s["objective"] > 0


@pytest.mark.slow
def test_experiment_smoke_preset(runs):
    r = ok(runs("experiment_smoke"))
    s = r.summary
    assert s["window"]["name"] == "smoke"
    assert s["drivers"] == 120 and days(s) == 1
    assert s["objective"] == ok(runs("base")).summary["objective"]


@pytest.mark.slow
def test_runs_accumulate_in_one_duckdb_file(runs):
    first, second = runs("shared_store")
    ok(first)
    ok(second)
    con = duckdb.connect(str(first.db), read_only=True)
    try:
        per_run = con.execute("SELECT count(*) FROM driver_days GROUP BY run_id").fetchall()
    finally:
        con.close()
    assert sorted(per_run) == [(120,), (120,)]


# ------------------------------------------------------------------------------------- in-process
def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.slow
def test_run_in_process(tmp_path, runs):
    outputs = tmp_path / "outputs"
    job_dir = tmp_path / "job"
    cfg = composed("window=smoke", f"paths.outputs={outputs}")
    objective = run(cfg, job_dir)
    assert isinstance(objective, float)
    summary = json.loads((job_dir / "summary.json").read_text())
    assert summary["objective"] == objective
    assert all(k in summary for k in CONTRACT_KEYS)
    assert objective == ok(runs("base")).summary["objective"]  # same config, same seed as the CLI run
    con = duckdb.connect(str(outputs / "results.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), avg(revenue_yen) FROM driver_days").fetchone() == (
            120, pytest.approx(objective, rel=1e-9)
        )
    finally:
        con.close()


def test_run_in_process_rejects_invalid_config_before_writing(tmp_path):
    outputs = tmp_path / "outputs"
    job_dir = tmp_path / "job"
    cfg = composed("window=smoke", "policy.gamma=1.0", f"paths.outputs={outputs}")
    with pytest.raises(ConfigError, match=r"policy\.gamma=1\.0; allowed: 0 <= gamma < 1"):
        run(cfg, job_dir)
    assert not job_dir.exists() and not outputs.exists()


def test_console_script_is_the_same_app():
    """`navitune` (pyproject's console script) is `python -m experiment`."""
    from importlib.metadata import entry_points

    import experiment.__main__ as cli

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "navitune"]
    assert ep.value == "experiment.__main__:main"
    assert ep.load() is cli.main


def test_duckdb_sink_waits_for_another_writer(tmp_path):
    """Parallel sweep jobs share one results file: a writer waits for the lock instead of failing. The test
    releases the lock only once the child has said that it found the file locked (no sleep, no luck)."""
    import subprocess
    import sys

    db = tmp_path / "results.duckdb"
    holder = duckdb.connect(str(db))  # this process holds DuckDB's single-writer lock
    code = (
        "import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.INFO, format='%(message)s'); "
        "import numpy as np; from experiment.sinks.duckdb_sink import write_duckdb; "
        f"print(write_duckdb({str(db)!r}, 'driver_days', {{'revenue_yen': np.arange(3.0)}}, {{'run_id': 'r'}}))"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = child.stderr.readline()  # blocks until the child has met the lock (or died: empty line)
        assert "is locked by another writer; waiting" in first, first
        assert child.poll() is None  # still waiting for the lock
    finally:
        holder.close()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "3"
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM driver_days").fetchone() == (3,)
    con.close()


def test_a_sweep_jobs_log_line_names_the_trial_not_the_policy() -> None:
    """In a sweep the trial's parameters are not the named policy's: its summary line names the trial."""
    from omegaconf import OmegaConf

    from experiment.app import _who

    cfg = OmegaConf.create({"policy": {"name": "production"}})
    assert _who(cfg, {"trial": None, "attempt": None}) == "production"
    assert _who(cfg, {"trial": 7, "attempt": 0, "origin_trial": 7}) == "trial 7"
    assert _who(cfg, {"trial": 9, "attempt": 1, "origin_trial": 7}) == "trial 9 (retry 1 of trial 7)"


def test_duckdb_sink_jobs_take_turns_without_the_lock_message(tmp_path):
    """A default sweep runs two jobs at a time: one job's start (the read-only check of the results file) met the
    other's write and logged "locked by another writer" for a wait of milliseconds. navitune's own processes
    now queue on an OS lock beside the file: the checking job waits for the write, silently, and then goes on."""
    import subprocess
    import sys
    import time

    import numpy as np

    from experiment.sinks.duckdb_sink import _turn, write_duckdb

    db = tmp_path / "results.duckdb"
    write_duckdb(str(db), "driver_days", {"revenue_yen": np.arange(3.0)}, {"run_id": "r"})
    code = (
        "import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.INFO, format='%(message)s'); "
        "from experiment.sinks.duckdb_sink import check_duckdb; print('checking', flush=True); "
        f"check_duckdb({str(db)!r}); print('checked', flush=True)"
    )
    with _turn(str(db), read_only=False):
        holder = duckdb.connect(str(db))  # a job writing: it holds DuckDB's single-writer lock
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            assert child.stdout.readline().strip() == "checking"
            time.sleep(0.5)
            assert child.poll() is None  # waits for the writer's turn
        finally:
            holder.close()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "checked"
    assert "locked" not in err and "waiting" not in err, err
