"""The result rows' one column list (shared by every sink) and the summary SQL over it.

Why one list: the DuckDB file on a laptop and the BigQuery table in the cloud must hold the same rows
with the same types, so one summary query gives the same numbers on both, and a query written against
one works on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["duckdb", "bigquery"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # BigQuery standard SQL type; DuckDB's equivalent comes from DUCKDB_TYPES
    description: str


COLUMNS: tuple[Column, ...] = (
    # who wrote the rows: a single run has only run_id; a sweep job also study, trial, attempt, origin_trial
    Column("run_id", "STRING", "unique id of the job that wrote the rows (time + random)"),
    Column("study", "STRING", "Optuna study of the sweep; NULL for a single run"),
    Column("trial", "INT64", "Optuna trial number of this attempt; NULL for a single run"),
    Column("attempt", "INT64", "0 = first try; a retry of a failed trial is attempt 1, 2, ..."),
    Column("origin_trial", "INT64", "trial number of the first attempt (retries are new Optuna trials)"),
    # what was simulated
    Column("region", "STRING", "region config (road network, fleet, demand level)"),
    Column("window", "STRING", "window config name (tune_week, test_week, smoke, ...)"),
    Column("window_start", "DATE", "first operating day of the window"),
    Column("demand_source", "STRING", "forecast the navigation planned with: ml or stats"),
    Column("policy", "STRING", "policy config name"),
    Column("params", "STRING", "the navigation parameters of the run, a JSON object"),
    Column("seed", "INT64", "demand seed of the window"),
    # one row per driver and operating day
    Column("date", "DATE", "operating day (the partitioning column in BigQuery)"),
    Column("day", "INT64", "operating day, 0 = window_start"),
    Column("driver", "INT64", "driver number within the fleet"),
    Column("shift_kind", "STRING", "alternate, day or night"),
    Column("worked", "BOOL", "the driver worked a shift that day (days off are rows of zeros)"),
    Column("revenue_yen", "FLOAT64", "fares earned"),
    Column("trips", "INT64", "trips driven"),
    Column("km_occupied", "FLOAT64", "km driven with a passenger"),
    Column("km_vacant", "FLOAT64", "km driven vacant, searching"),
    Column("km_return", "FLOAT64", "km driven back to the depot or back into the region"),
    Column("min_vacant", "FLOAT64", "minutes vacant"),
    Column("min_occupied", "FLOAT64", "minutes with a passenger"),
    Column("min_break", "FLOAT64", "minutes on break"),
    Column("min_return", "FLOAT64", "minutes returning"),
    Column("min_on_shift", "FLOAT64", "minutes from shift start to shift end"),
)
COLUMN_TYPES: dict[str, str] = {c.name: c.type for c in COLUMNS}
KEY = ("study", "trial", "attempt")  # a write replaces the earlier rows of its key (or of its run_id)
PARTITION_BY = "date"
CLUSTER_BY = ("study", "trial")
DUCKDB_TYPES = {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "BOOL": "BOOLEAN", "DATE": "DATE"}


def duckdb_type(name: str) -> str:
    return DUCKDB_TYPES[COLUMN_TYPES[name]]


def quote(name: str, dialect: Dialect) -> str:
    """A quoted identifier: ``window`` is a reserved word in both dialects, and they quote differently."""
    return f"`{name}`" if dialect == "bigquery" else f'"{name}"'


def check_columns(names: list[str]) -> None:
    """Rows may leave columns out (they are NULL) but not bring unknown ones: the schema is the contract."""
    unknown = [n for n in names if n not in COLUMN_TYPES]
    if unknown:
        raise ValueError(f"columns not in the result schema (experiment/sinks/schema.py): {', '.join(unknown)}")


def key_predicate(dialect: Dialect, alias: str = "") -> str:
    """Rows an incoming write replaces: those of the same job (run_id) or the same (study, trial, attempt).

    Parameters are ``run_id, study, trial, attempt`` (positional ``?`` in DuckDB, ``@name`` in BigQuery);
    a single run's NULL study/trial/attempt match nothing, so single runs accumulate.
    """
    p = (lambda n: f"@{n}") if dialect == "bigquery" else (lambda n: "?")
    col = (lambda n: f"{alias}.{quote(n, dialect)}") if alias else (lambda n: quote(n, dialect))
    key = " AND ".join(f"{col(k)} = {p(k)}" for k in KEY)
    return f"({col('run_id')} = {p('run_id')} OR ({key}))"


SUMMARY_KEYS = ("study", "trial", "attempt", "origin_trial", "run_id", "region", "window", "demand_source",
                "policy", "params", "seed")
SUMMARY_SQL = """\
WITH per_attempt AS (
  SELECT
    {keys},
    COUNT(*) AS driver_days,
    COUNT(DISTINCT {driver}) AS drivers,
    MIN({date}) AS first_date,
    MAX({date}) AS last_date,
    SUM(CASE WHEN {worked} THEN 1 ELSE 0 END) AS shifts,
    SUM({revenue}) AS revenue_yen,
    AVG({revenue}) AS revenue_per_driver_day_yen,
    SUM({revenue}) / NULLIF(SUM(CASE WHEN {worked} THEN 1 ELSE 0 END), 0) AS revenue_per_driver_shift_yen,
    SUM({trips}) / NULLIF(SUM(CASE WHEN {worked} THEN 1 ELSE 0 END), 0) AS trips_per_driver_shift,
    SUM({revenue}) / NULLIF(SUM({trips}), 0) AS mean_fare_yen,
    SUM({km_occupied}) / NULLIF(SUM({km_occupied} + {km_vacant} + {km_return}), 0) AS occupancy_distance
  FROM {table}{where}
  GROUP BY {keys}
)
SELECT
  *,
  COALESCE({trial} < MAX({trial}) OVER (PARTITION BY {study}, {origin_trial}), FALSE) AS superseded
FROM per_attempt
ORDER BY {study} NULLS LAST, {trial} NULLS LAST, {attempt} NULLS LAST, {run_id}"""


def summary_sql(table: str, dialect: Dialect, study: bool = False) -> str:
    """The summary query for ``table`` (a DuckDB table name, or ``project.dataset.table`` in BigQuery).

    One row per job that wrote rows (per study, trial, attempt; per run_id for single runs) with the
    metrics of ``summary.json`` recomputed from the rows. ``superseded`` is true when a later trial of the
    same ``origin_trial`` (a retry) also wrote rows: leave those out (``WHERE NOT superseded``) when
    aggregating over a study, so a retried trial counts once. With ``study=True`` the query takes one
    parameter, the study name (``?`` in DuckDB, ``@study`` in BigQuery).
    """
    q = {n: quote(n, dialect) for n in COLUMN_TYPES}
    target = f"`{table}`" if dialect == "bigquery" else table
    where = f"\n  WHERE {q['study']} = {'@study' if dialect == 'bigquery' else '?'}" if study else ""
    return SUMMARY_SQL.format(
        keys=", ".join(q[k] for k in SUMMARY_KEYS), table=target, where=where,
        driver=q["driver"], date=q["date"], worked=q["worked"], revenue=q["revenue_yen"], trips=q["trips"],
        km_occupied=q["km_occupied"], km_vacant=q["km_vacant"], km_return=q["km_return"],
        trial=q["trial"], study=q["study"], origin_trial=q["origin_trial"], attempt=q["attempt"],
        run_id=q["run_id"],
    )
