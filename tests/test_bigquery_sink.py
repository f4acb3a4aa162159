"""Result sinks: the BigQuery sink against a real ``bqemulator`` with the real ``google-cloud-bigquery`` client,
and the DuckDB sink beside it (same schema, same idempotency key, same summary SQL, same numbers).

The emulator is started by the session fixture of ``tests/fixtures/bqemulator.py`` (skipped locally when it
is missing, a failure on CI). Each test writes into its own dataset, so tests do not see each other's rows.
The two CLI runs (a single run and a 3-trial sweep, both ``+experiment=smoke sink=bigquery``) start together
in a small thread pool at the first test that needs them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import experiment.__main__  # noqa: F401  (registers the schema exactly as the CLI does)
from experiment.registration import register_configs
from experiment.sinks import summary, write_rows
from experiment.sinks.bigquery_sink import merge_sql, prepare_bigquery
from experiment.sinks.duckdb_sink import write_duckdb
from experiment.sinks.schema import CLUSTER_BY, COLUMNS, summary_sql
from tests.fixtures.bqemulator import BQEmulator

if "navitune_schema.yaml" not in ConfigStore.instance().repo:
    register_configs()

ROOT = Path(__file__).resolve().parent.parent
CLI_TIMEOUT_S = 300
STUDY = "navitune_tokyo_central_smoke_ml"  # the study a smoke sweep creates
SMOKE_DRIVER_DAYS = 120


# ------------------------------------------------------------------------------------------ helpers
def composed(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def sim_rows() -> dict[str, np.ndarray]:
    """The per-driver-day rows of a real smoke simulation (what the app writes), with their dates."""
    from experiment.app import sim_params
    from experiment.sim.simulate import simulate

    cfg = composed("+experiment=smoke")
    rows = dict(simulate(sim_params(cfg)).driver_days)
    start = dt.date.fromisoformat(cfg.window.start)
    rows["date"] = np.array([(start + dt.timedelta(days=int(d))).isoformat() for d in rows["day"]])
    return rows


def context(run_id: str, study: str | None = "s1", trial: int | None = 0, attempt: int | None = 0,
            origin: int | None = None) -> dict[str, Any]:
    return {
        "run_id": run_id, "study": study, "trial": trial, "attempt": attempt,
        "origin_trial": trial if origin is None else origin, "region": "tokyo_central", "window": "smoke",
        "window_start": "2026-06-03", "demand_source": "ml", "policy": "production",
        "params": json.dumps({"policy": "production", "gamma": 0.93}), "seed": 7,
    }


def scaled(rows: dict[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    """The same rows with revenue scaled: a different trial's (or a re-run's) results."""
    return rows | {"revenue_yen": rows["revenue_yen"] * factor}


def bq_rows(emu: BQEmulator, sql: str) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in emu.client().query(sql).result()]


def run_cli(cwd: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR" and not k.startswith("NAVITUNE_OPTUNA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "experiment", *overrides, f"paths.outputs={cwd / 'outputs'}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def cli_runs(bqemulator: BQEmulator, tmp_path_factory):  # noqa: F811
    """``cli_runs(name)`` -> (completed process, cwd) of the single run ("single") or the sweep ("sweep")."""
    runs = {
        "single": ["+experiment=smoke", *bqemulator.overrides("app_single")],
        "sweep": ["-m", "+experiment=smoke", *bqemulator.overrides("app_sweep"), "hydra.sweeper.n_trials=3"],
    }
    pool = ThreadPoolExecutor(max_workers=2)
    futures: dict[str, Future] = {}
    for name, overrides in runs.items():
        cwd = tmp_path_factory.mktemp(name)
        futures[name] = pool.submit(lambda c=cwd, o=overrides: (run_cli(c, o), c))
    yield lambda name: futures[name].result()
    pool.shutdown(wait=True, cancel_futures=True)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


# ------------------------------------------------------------------------------- the table itself
def test_table_is_created_with_schema_partitioning_and_clustering(bqemulator: BQEmulator):  # noqa: F811
    sink = bqemulator.sink("created")
    client = bqemulator.client()
    assert [d.dataset_id for d in client.list_datasets()].count("created") == 0
    table_id = prepare_bigquery(sink)
    assert table_id == f"{bqemulator.project}.created.driver_days"
    table = client.get_table(table_id)  # what the emulator stored from our create request
    assert [(f.name, f.field_type, f.mode) for f in table.schema] == [(c.name, c.type, "NULLABLE") for c in COLUMNS]
    assert table.time_partitioning is not None
    assert table.time_partitioning.type_ == "DAY"
    assert table.time_partitioning.field == "date"
    assert table.clustering_fields == list(CLUSTER_BY) == ["study", "trial"]
    assert prepare_bigquery(sink) == table_id  # a second prepare finds the table and leaves it alone
    assert [t.table_id for t in client.list_tables(f"{bqemulator.project}.created")] == ["driver_days"]


def test_existing_table_missing_columns_gets_them(bqemulator: BQEmulator):  # noqa: F811
    """A table written by an older navitune (no study/trial/attempt yet) gains the new columns."""
    from google.cloud import bigquery

    client = bqemulator.client()
    client.create_dataset("older")
    old = [bigquery.SchemaField(c.name, c.type) for c in COLUMNS if c.name not in ("study", "trial", "attempt",
                                                                                      "origin_trial")]
    client.create_table(bigquery.Table(f"{bqemulator.project}.older.driver_days", schema=old))
    prepare_bigquery(bqemulator.sink("older"))
    names = [f.name for f in client.get_table(f"{bqemulator.project}.older.driver_days").schema]
    assert sorted(names) == sorted(c.name for c in COLUMNS)


# ------------------------------------------------------------------------------ rows and retries
def test_rows_per_trial_and_no_duplicates_after_a_retried_write(bqemulator: BQEmulator, sim_rows):  # noqa: F811
    sink = bqemulator.sink("retries")
    n = len(sim_rows["driver"])
    for trial in range(3):
        assert write_rows(sink, scaled(sim_rows, 1 + trial), context(f"run-{trial}", trial=trial)) == n
    write_rows(sink, sim_rows, context("other-study", study="s2", trial=1))  # same trial number, other study
    table = f"`{bqemulator.project}.retries.driver_days`"
    per_trial = ("SELECT study, trial, attempt, COUNT(*) AS n, COUNT(DISTINCT run_id) AS runs, "
                 f"SUM(revenue_yen) AS rev FROM {table} GROUP BY study, trial, attempt ORDER BY study, trial")
    before = bq_rows(bqemulator, per_trial)
    assert [(r["study"], r["trial"], r["attempt"], r["n"]) for r in before] == [
        ("s1", 0, 0, n), ("s1", 1, 0, n), ("s1", 2, 0, n), ("s2", 1, 0, n)
    ]
    # the same (study, trial, attempt) written again, by another job (new run_id) with other results
    write_rows(sink, scaled(sim_rows, 10.0), context("run-1-again", trial=1))
    after = bq_rows(bqemulator, per_trial)
    assert [(r["study"], r["trial"], r["n"], r["runs"]) for r in after] == [
        ("s1", 0, n, 1), ("s1", 1, n, 1), ("s1", 2, n, 1), ("s2", 1, n, 1)
    ]
    rev = {(r["study"], r["trial"]): r["rev"] for r in after}
    assert rev[("s1", 1)] == pytest.approx(10.0 * float(sim_rows["revenue_yen"].sum()), rel=1e-12)  # replaced
    assert rev[("s1", 0)] == pytest.approx(float(sim_rows["revenue_yen"].sum()), rel=1e-12)  # untouched
    assert rev[("s2", 1)] == pytest.approx(float(sim_rows["revenue_yen"].sum()), rel=1e-12)  # other study kept
    (dupes,) = bq_rows(bqemulator, f"SELECT COUNT(*) - COUNT(DISTINCT CONCAT(study, '/', CAST(trial AS STRING), '/', "
                                   f"CAST(driver AS STRING), '/', CAST(day AS STRING))) AS d FROM {table}")
    assert dupes["d"] == 0
    staging = [t.table_id for t in bqemulator.client().list_tables(f"{bqemulator.project}.retries")]
    assert staging == ["driver_days"], "a staging table was left behind"


def test_sweeper_retry_is_marked_superseded(bqemulator: BQEmulator, sim_rows):  # noqa: F811
    """A failed trial run again by the sweeper is a new trial (attempt 1, same origin): both keep their rows,
    and the summary marks the earlier one superseded so study-wide figures count the trial once."""
    sink = bqemulator.sink("superseded")
    write_rows(sink, sim_rows, context("a0", trial=4, attempt=0))
    write_rows(sink, scaled(sim_rows, 2.0), context("a1", trial=6, attempt=1, origin=4))
    write_rows(sink, sim_rows, context("single", study=None, trial=None, attempt=None))
    got = [(r["study"], r["trial"], r["attempt"], r["origin_trial"], r["superseded"]) for r in summary(sink)]
    assert got == [("s1", 4, 0, 4, True), ("s1", 6, 1, 4, False), (None, None, None, None, False)]


def test_single_runs_accumulate(bqemulator: BQEmulator, sim_rows):  # noqa: F811
    sink = bqemulator.sink("singles")
    for run_id in ("r1", "r2"):
        write_rows(sink, sim_rows, context(run_id, study=None, trial=None, attempt=None))
    write_rows(sink, sim_rows, context("r2", study=None, trial=None, attempt=None))  # the same run again
    assert sorted((r["run_id"], r["driver_days"]) for r in summary(sink)) == [
        ("r1", len(sim_rows["driver"])), ("r2", len(sim_rows["driver"]))
    ]


# ------------------------------------------------------------------------- one SQL, same numbers
def test_summary_sql_is_one_query_for_both_dialects():
    duck, bq = summary_sql("driver_days", "duckdb"), summary_sql("p.d.driver_days", "bigquery")
    assert bq.replace("`p.d.driver_days`", "driver_days").replace("`", '"') == duck
    assert "`window`" in bq and '"window"' in duck  # a reserved word in both dialects


def test_summary_sql_gives_the_same_numbers_on_bigquery_and_duckdb(
    bqemulator: BQEmulator, sim_rows, tmp_path  # noqa: F811
):
    bq = bqemulator.sink("same_numbers")
    duck = OmegaConf.create({"kind": "duckdb", "path": str(tmp_path / "results.duckdb"), "table": "driver_days"})
    writes = [
        (scaled(sim_rows, 1.0), context("t0", trial=0)),
        (scaled(sim_rows, 1.1), context("t1", trial=1)),
        (scaled(sim_rows, 0.9), context("t1-retry", trial=2, attempt=1, origin=1)),
        (scaled(sim_rows, 1.2), context("t1-again", trial=1)),  # replaces t1
        (scaled(sim_rows, 0.7), context("single", study=None, trial=None, attempt=None)),
    ]
    for rows, ctx in writes:
        write_rows(bq, rows, ctx)
        write_rows(duck, rows, ctx)
    b, d = summary(bq), summary(duck)
    assert len(b) == len(d) == 4
    assert [r["run_id"] for r in b] == [r["run_id"] for r in d] == ["t0", "t1-again", "t1-retry", "single"]
    for rb, rd in zip(b, d):
        assert rb.keys() == rd.keys()
        for key, value in rb.items():
            if isinstance(value, float):
                assert rd[key] == pytest.approx(value, rel=1e-12), key
            else:
                assert rd[key] == value, key
    # and the numbers are the ones summary.json would report for these rows
    t0 = next(r for r in d if r["run_id"] == "t0")
    assert t0["revenue_per_driver_day_yen"] == pytest.approx(float(sim_rows["revenue_yen"].mean()), rel=1e-12)
    assert t0["driver_days"] == len(sim_rows["driver"])
    assert t0["shifts"] == int(sim_rows["worked"].sum())
    assert [r["superseded"] for r in d] == [False, True, False, False]
    assert summary(bq, study="s1") == b[:3]
    assert [r["run_id"] for r in summary(duck, study="s1")] == ["t0", "t1-again", "t1-retry"]


def test_merge_statement_replaces_the_key_atomically():
    sql = merge_sql("p.d.t", "p.d.t_staging_1")
    assert sql.startswith("MERGE `p.d.t` AS T\nUSING `p.d.t_staging_1` AS S\nON FALSE\n")
    assert "WHEN NOT MATCHED BY SOURCE AND (T.`run_id` = @run_id OR (T.`study` = @study AND T.`trial` = @trial " \
           "AND T.`attempt` = @attempt)) THEN DELETE" in sql


# ------------------------------------------------------------------------------ DuckDB alongside
def test_duckdb_sink_is_idempotent_per_study_trial_attempt(tmp_path, sim_rows):
    path = str(tmp_path / "r.duckdb")
    write_duckdb(path, "driver_days", sim_rows, context("a", trial=3))
    write_duckdb(path, "driver_days", scaled(sim_rows, 3.0), context("b", trial=3))  # same key, new job
    write_duckdb(path, "driver_days", sim_rows, context("c", trial=3, attempt=1))
    con = duckdb.connect(path, read_only=True)
    try:
        got = con.execute("SELECT run_id, attempt, count(*), sum(revenue_yen) FROM driver_days "
                          "GROUP BY ALL ORDER BY attempt").fetchall()
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'driver_days'").fetchall())
    finally:
        con.close()
    n, total = len(sim_rows["driver"]), float(sim_rows["revenue_yen"].sum())
    assert [(r, a, c) for r, a, c, _ in got] == [("b", 0, n), ("c", 1, n)]
    assert got[0][3] == pytest.approx(3 * total, rel=1e-12)
    assert types == {c.name: {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "BOOL": "BOOLEAN",
                              "DATE": "DATE"}[c.type] for c in COLUMNS}


def test_duckdb_table_of_an_older_navitune_gains_the_new_columns(tmp_path, sim_rows):
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE TABLE driver_days (run_id VARCHAR, driver BIGINT, day BIGINT, revenue_yen DOUBLE)")
    con.execute("INSERT INTO driver_days VALUES ('old', 0, 0, 1.0)")
    con.close()
    write_duckdb(path, "driver_days", sim_rows, context("new", trial=0))
    con = duckdb.connect(path, read_only=True)
    try:
        assert con.execute("SELECT run_id, count(*), count(study) FROM driver_days GROUP BY ALL ORDER BY 1"
                           ).fetchall() == [("new", len(sim_rows["driver"]), len(sim_rows["driver"])), ("old", 1, 0)]
    finally:
        con.close()


def test_unknown_columns_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not in the result schema.*: bogus"):
        write_duckdb(str(tmp_path / "x.duckdb"), "driver_days", {"bogus": np.arange(2)}, {"run_id": "r"})
    assert not (tmp_path / "x.duckdb").exists()


# ------------------------------------------------------------------------------ the app, for real
def test_single_run_writes_its_rows_to_bigquery(bqemulator: BQEmulator, cli_runs):  # noqa: F811
    proc, cwd = cli_runs("single")
    ok(proc)
    outputs = cwd / "outputs"
    (run_dir,) = [p for p in (outputs / "runs").glob("*/*") if p.is_dir()]
    s = json.loads((run_dir / "summary.json").read_text())
    assert not (outputs / "results.duckdb").exists(), "sink=bigquery also wrote the DuckDB file"
    (row,) = summary(bqemulator.sink("app_single"))
    assert (row["study"], row["trial"], row["attempt"], row["origin_trial"]) == (None, None, None, None)
    assert row["driver_days"] == SMOKE_DRIVER_DAYS
    assert row["revenue_per_driver_day_yen"] == pytest.approx(s["objective"], rel=1e-12)
    assert row["revenue_per_driver_shift_yen"] == pytest.approx(s["revenue_per_driver_shift_yen"], rel=1e-12)
    assert row["trips_per_driver_shift"] == pytest.approx(s["trips_per_driver_shift"], rel=1e-12)
    assert row["occupancy_distance"] == pytest.approx(s["occupancy_distance"], rel=1e-9)
    assert (row["region"], row["window"], row["demand_source"], row["policy"], row["seed"]) == (
        "tokyo_central", "smoke", "ml", "production", 7)
    assert json.loads(row["params"]) == s["params"]
    assert row["first_date"] == row["last_date"] == dt.date(2026, 6, 3)


def test_sweep_writes_rows_per_trial_with_study_trial_attempt(bqemulator: BQEmulator, cli_runs):  # noqa: F811
    import optuna

    proc, cwd = cli_runs("sweep")
    ok(proc)
    rows = summary(bqemulator.sink("app_sweep"))
    assert [(r["study"], r["trial"], r["attempt"], r["origin_trial"]) for r in rows] == [
        (STUDY, t, 0, t) for t in range(3)
    ]
    assert [r["driver_days"] for r in rows] == [SMOKE_DRIVER_DAYS] * 3
    assert len({r["run_id"] for r in rows}) == 3
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(cwd / "outputs" / "optuna" / "studies.journal")))
    values = {t.number: t.value for t in optuna.load_study(study_name=STUDY, storage=storage).trials}
    for r in rows:  # each trial's rows give back the objective the sweeper recorded for that trial
        assert r["revenue_per_driver_day_yen"] == pytest.approx(values[r["trial"]], rel=1e-12)


def test_results_cli_prints_the_summary(bqemulator: BQEmulator, cli_runs, tmp_path):  # noqa: F811
    """``python -m experiment.results summary`` is the user's way to run the summary SQL on a sink."""
    ok(cli_runs("sweep")[0])
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = ok(subprocess.run(
        [sys.executable, "-m", "experiment.results", "summary", "--json", "--study", STUDY,
         *bqemulator.overrides("app_sweep")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    ))
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = summary(bqemulator.sink("app_sweep"), study=STUDY)
    assert [(r["study"], r["trial"], r["driver_days"]) for r in printed] == [(STUDY, t, 120) for t in range(3)]
    assert printed == json.loads(json.dumps(expected, default=str))
