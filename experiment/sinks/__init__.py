"""Result sinks: where per-driver-day rows go (``sink=duckdb``, the default, or ``sink=bigquery``).

Both hold the same columns (``schema.COLUMNS``), replace the rows of a (study, trial, attempt) — or of a
single run's ``run_id`` — when it is written again, and answer the same summary SQL (:func:`summary`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hydra_plugins.navitune_shared.errors import message_line

from experiment.errors import SinkError


def prepare_sink(sink_cfg: Any) -> None:
    """Check the sink is reachable (and create its table) before the simulation; DuckDB: an existing file opens."""
    if sink_cfg.kind == "duckdb":
        from .duckdb_sink import check_duckdb

        check_duckdb(str(sink_cfg.path))
    if sink_cfg.kind == "bigquery":
        from .bigquery_sink import prepare_bigquery

        prepare_bigquery(sink_cfg)


def write_rows(sink_cfg: Any, rows: dict[str, np.ndarray], context: dict[str, Any]) -> int:
    """Write ``rows`` (column arrays) plus constant ``context`` columns to the configured sink."""
    if sink_cfg.kind == "duckdb":
        from .duckdb_sink import write_duckdb

        return write_duckdb(sink_cfg.path, sink_cfg.table, rows, context)
    if sink_cfg.kind == "bigquery":
        from .bigquery_sink import write_bigquery

        return write_bigquery(sink_cfg, rows, context)
    raise NotImplementedError(f"sink.kind={sink_cfg.kind!r} is not available")


def summary(sink_cfg: Any, study: str | None = None) -> list[dict[str, Any]]:
    """The summary SQL (``schema.summary_sql``) run on the configured sink: one dict per job that wrote
    rows, optionally only those of one study."""
    from .schema import summary_sql

    if sink_cfg.kind == "duckdb":
        import duckdb

        from .duckdb_sink import query_duckdb

        sql = summary_sql(sink_cfg.table, "duckdb", study=study is not None)
        try:
            return query_duckdb(sink_cfg.path, sql, [study] if study is not None else [])
        except duckdb.Error as err:
            raise SinkError(f"navitune: DuckDB sink {sink_cfg.path} ({sink_cfg.table}): {message_line(err)}") from None
    if sink_cfg.kind == "bigquery":
        from .bigquery_sink import make_client, one_line, query_bigquery, table_id

        with one_line(sink_cfg):
            client = make_client(sink_cfg)
            sql = summary_sql(table_id(sink_cfg, client), "bigquery", study=study is not None)
        return query_bigquery(sink_cfg, sql, {"study": study} if study is not None else None, client=client)
    raise NotImplementedError(f"sink.kind={sink_cfg.kind!r} is not available")
