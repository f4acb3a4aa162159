"""Result sinks: where per-driver-day rows go (DuckDB locally)."""

from __future__ import annotations

from typing import Any

import numpy as np


def write_rows(sink_cfg: Any, rows: dict[str, np.ndarray], context: dict[str, Any]) -> int:
    """Write ``rows`` (column arrays) plus constant ``context`` columns to the configured sink."""
    if sink_cfg.kind == "duckdb":
        from .duckdb_sink import write_duckdb

        return write_duckdb(sink_cfg.path, sink_cfg.table, rows, context)
    raise NotImplementedError(f"sink.kind={sink_cfg.kind!r} is not available yet")
