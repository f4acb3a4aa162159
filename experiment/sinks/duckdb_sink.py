"""DuckDB sink: one table of per-driver-day rows, idempotent per run id."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np

_SQL_TYPES = {"b": "BOOLEAN", "i": "BIGINT", "u": "BIGINT", "f": "DOUBLE", "U": "VARCHAR", "S": "VARCHAR", "O": "VARCHAR"}


def write_duckdb(path: str, table: str, rows: dict[str, np.ndarray], context: dict[str, Any]) -> int:
    """Append the rows of one run in one transaction; an earlier write with the same ``run_id`` is replaced.

    The table is created with explicit column types: DuckDB scans NumPy text arrays as ENUMs of the
    values at hand, which must not become the stored type of a table shared by many runs.
    """
    n = len(next(iter(rows.values())))
    data = {k: np.full(n, v) for k, v in context.items()} | {k: np.asarray(v) for k, v in rows.items()}
    columns = ", ".join(f'"{k}" {_SQL_TYPES.get(a.dtype.kind, "VARCHAR")}' for k, a in data.items())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path)
    try:
        con.register("incoming", data)
        con.execute("BEGIN")
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [context["run_id"]])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        con.execute("COMMIT")
    finally:
        con.close()
    return n


def _connect(path: str, wait_s: float = 60.0) -> Any:
    """Open the file for writing; parallel jobs of a sweep take turns (DuckDB allows one writer process)."""
    import duckdb

    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
