"""DuckDB sink: one table of per-driver-day rows, idempotent per run id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_duckdb(path: str, table: str, rows: dict[str, np.ndarray], context: dict[str, Any]) -> int:
    """Append the rows of one run in one transaction; an earlier write with the same ``run_id`` is replaced."""
    import duckdb

    n = len(next(iter(rows.values())))
    data = {k: _column(np.full(n, v)) for k, v in context.items()} | {k: _column(v) for k, v in rows.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(path)
    try:
        con.register("incoming", data)
        con.execute("BEGIN")
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [context["run_id"]])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        con.execute("COMMIT")
    finally:
        con.close()
    return n


def _column(values: Any) -> np.ndarray:
    """NumPy strings would be registered as ENUMs of this run's values: store text as VARCHAR."""
    arr = np.asarray(values)
    return arr.astype(object) if arr.dtype.kind in "US" else arr
