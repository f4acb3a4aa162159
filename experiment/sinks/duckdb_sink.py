"""DuckDB sink: one table of per-driver-day rows, idempotent per (study, trial, attempt) and per run id."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hydra_plugins.navitune_shared.errors import message_line
from hydra_plugins.navitune_shared.retry import Backoff

from experiment.file_lock import acquire

from .schema import COLUMNS, KEY, check_columns, duckdb_type, key_predicate, quote

CONNECT_BACKOFF = Backoff(first_s=0.03, factor=2.0, max_s=1.0, jitter=0.33)  # waiting out another program's writer

log = logging.getLogger("navitune.sinks")


def write_duckdb(path: str, table: str, rows: dict[str, np.ndarray], context: dict[str, Any]) -> int:
    """Write the rows of one job in one transaction, replacing earlier rows of the same key.

    A sweep job's key is (study, trial, attempt), so a re-run of the same attempt never double-counts;
    a single run's is its ``run_id``. The table has the explicit types of ``schema.COLUMNS``: DuckDB scans
    NumPy text arrays as ENUMs of the values at hand, which must not become the stored type of a table
    shared by many runs. Columns missing from a table written by an older navitune are added.
    """
    n = len(next(iter(rows.values())))
    check_columns([*context, *rows])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    q = lambda name: quote(name, "duckdb")  # noqa: E731
    select = [f"CAST(? AS {duckdb_type(k)}) AS {q(k)}" for k in context if k not in rows]
    select += [f"CAST({q(k)} AS {duckdb_type(k)}) AS {q(k)}" for k in rows]
    with _turn(path, read_only=False):
        _write(_connect(path), table, rows, context, select, q)
    return n


def _write(con: Any, table: str, rows: dict[str, np.ndarray], context: dict[str, Any], select: list[str],
           q: Any) -> None:
    try:
        con.register("incoming", {k: np.asarray(v) for k, v in rows.items()})
        con.execute("BEGIN")
        columns = ", ".join(f"{q(c.name)} {duckdb_type(c.name)}" for c in COLUMNS)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        for c in COLUMNS:
            if c.name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {q(c.name)} {duckdb_type(c.name)}")
        con.execute(f"DELETE FROM {table} WHERE {key_predicate('duckdb')}",
                    [context.get("run_id"), *(context.get(k) for k in KEY)])
        con.execute(f"INSERT INTO {table} BY NAME SELECT {', '.join(select)} FROM incoming",
                    [v for k, v in context.items() if k not in rows])
        con.execute("COMMIT")
    finally:
        con.close()


def check_duckdb(path: str) -> None:
    """An existing results file must open as a DuckDB database (a corrupt one fails now, in one line, not after
    the simulation); a missing one is created by the first write. Nothing is written here."""
    import duckdb

    from experiment.errors import SinkError

    if not Path(path).exists():
        return
    try:
        with _turn(path, read_only=True):
            _connect(path, read_only=True).close()
    except duckdb.Error as err:
        raise SinkError(f"navitune: invalid sink.path={path!r}: {message_line(err)}; allowed: a DuckDB database file, or a "
                        "path where none exists yet (move the file away to start a new one)") from None


def query_duckdb(path: str, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a read-only query as dicts (waits for a writer like :func:`write_duckdb`)."""
    with _turn(path, read_only=True):
        con = _connect(path, read_only=True)
        try:
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            con.close()


QUIET_WAIT_S = 5.0  # taking turns with the sweep's other jobs is normal: say so only past this


@contextmanager
def _turn(path: str, read_only: bool, wait_s: float = 60.0) -> Any:
    """Take turns with the other navitune processes on ``path`` through an OS lock beside it (shared for
    readers, exclusive for a writer), so that they queue instead of meeting DuckDB's single-writer lock.

    Why: every sweep job opens the results file twice, read-only at its start (:func:`check_duckdb`) and to
    write at its end; with two jobs at a time (the default sweep) one job's start met the other's write about
    once in ten trials, and DuckDB's lock error made it log "locked by another writer" for a wait of
    milliseconds. The OS lock dies with its holder (a killed job leaves nothing locked); its file lives in the
    temp directory, named by a hash of the results file's path."""
    if not Path(path).parent.is_dir():  # nothing to read yet (a writer makes the directory first)
        yield
        return
    # in the temp directory, as the MLflow store's lock (experiment.tracking.store): outputs/ stays the results
    key = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"navitune-duckdb-{key}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        told: list[bool] = []

        def waiting(waited: float) -> None:  # one line, and only for a wait a user would notice
            if waited > QUIET_WAIT_S and not told:
                told.append(True)
                log.info("%s is busy with another navitune job; waiting up to %.0f s", path, wait_s)

        acquire(fd, not read_only, wait_s, f"{path} stayed busy for {wait_s:.0f} s (another navitune process "
                                           f"holds {lock})", waiting)
        yield
    finally:
        os.close(fd)  # releases the lock


def _connect(path: str, wait_s: float = 60.0, read_only: bool = False) -> Any:
    """Open the file (navitune's own processes take turns in :func:`_turn` first; this waits for another
    program's connection, e.g. a ``duckdb`` shell: DuckDB allows one writer process)."""
    import duckdb

    deadline, pauses, said = time.monotonic() + wait_s, CONNECT_BACKOFF.pauses(), False
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            if not said:  # once per open: a job that waits says why
                log.info("%s is locked by another writer; waiting up to %.0f s", path, wait_s)
                said = True
            time.sleep(next(pauses))
