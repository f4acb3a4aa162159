"""``python -m experiment.results summary [--study NAME] [--json | --sql] [overrides...]``: the summary SQL
of the result rows, on the sink the overrides select (DuckDB by default, ``sink=bigquery ...`` for BigQuery).

One line per job that wrote rows (per study, trial and attempt; per run for single runs) with revenue per
driver-day and per shift, trips per shift and occupancy recomputed from the rows. ``--sql`` prints the
query for the selected sink instead of running it (paste it into the BigQuery console or ``duckdb``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

TABLE_COLUMNS = (
    ("study", "study"), ("trial", "trial"), ("attempt", "attempt"), ("run_id", "run"),
    ("driver_days", "driver-days"), ("revenue_per_driver_day_yen", "yen/driver-day"),
    ("revenue_per_driver_shift_yen", "yen/shift"), ("trips_per_driver_shift", "trips/shift"),
    ("occupancy_distance", "occupancy"), ("superseded", "superseded"),
)


def compose_sink(overrides: list[str]) -> Any:
    """The ``sink`` node of the app's config with these overrides, validated like a run's."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiment.preflight import CONF_DIR, composition_error  # registers the schema, as the CLI does
    from experiment.config import ConfigError, validate

    try:
        with initialize_config_dir(config_dir=CONF_DIR):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        line = composition_error(err, overrides) or (str(err).strip().splitlines() or ["?"])[0]
        raise ConfigError(line) from None
    validate(cfg)
    return cfg.sink


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "occupancy_distance":
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:,.1f}" if key == "trips_per_driver_shift" else f"{value:,.0f}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned text columns (the run id only where there is no study)."""
    cols = [(k, h) for k, h in TABLE_COLUMNS if k != "run_id" or any(r["study"] is None for r in rows)]
    cells = [[h for _, h in cols]] + [[_cell(k, r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiment.results", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="the summary SQL on the selected sink")
    p.add_argument("--study", help="only this study")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per line, every column")
    out.add_argument("--sql", action="store_true", help="print the query, do not run it")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. sink=bigquery sink.project=my-project")
    args = parser.parse_args(argv)

    from experiment.config import ConfigError
    from experiment.sinks import SinkError, summary

    try:
        sink = compose_sink(args.overrides)
        if args.sql:
            from experiment.sinks.schema import summary_sql

            table = sink.table
            if sink.kind == "bigquery":
                table = f"{sink.project or '<project>'}.{sink.dataset}.{sink.table}"
            print(summary_sql(table, sink.kind, study=args.study is not None))
            return 0
        rows = summary(sink, study=args.study)
    except (ConfigError, SinkError) as err:
        print(str(err), file=sys.stderr)
        return 2
    if args.json:
        for row in rows:
            print(json.dumps(row, default=_json_default))
    elif rows:
        print(format_table(rows))
    else:
        print("no result rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
