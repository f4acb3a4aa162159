"""BigQuery sink: the DuckDB sink's rows and schema in a table partitioned by day and clustered by study, trial.

How a write stays idempotent per (study, trial, attempt): the rows go to a fresh staging table with a
**load job** (``WRITE_TRUNCATE``: a re-submitted load replaces, never appends), then one ``MERGE ... ON
FALSE`` deletes the key's earlier rows from the result table and inserts the staged ones in a single
atomic statement. Every step can therefore be retried — by the client library, by this module after a
concurrent-update conflict, or by the sweeper running the job again — without double-counting, and
readers never see the key with no rows or with two copies (a DELETE followed by a load into the table
itself would show both gaps and, when a load job that did finish is retried, duplicates). Load jobs are
free and have no streaming buffer, so the MERGE may touch rows written seconds earlier.

Credentials come from the environment (Application Default Credentials), never from the config; an
``http://`` ``api_endpoint`` is an emulator, reached with anonymous credentials.
``google-cloud-bigquery`` is imported lazily: only ``sink=bigquery`` needs it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import uuid
from typing import Any, Iterator

import numpy as np
from hydra_plugins.navitune_shared.errors import error_line
from hydra_plugins.navitune_shared.retry import Backoff, call_with_retries

from experiment.errors import SinkError
from .schema import CLUSTER_BY, COLUMN_TYPES, COLUMNS, KEY, PARTITION_BY, check_columns, key_predicate, quote

log = logging.getLogger("navitune")
REQUEST_DEADLINE_S = 120.0  # how long transient API errors are retried
JOB_TIMEOUT_S = 900.0
STAGING_TTL = dt.timedelta(hours=6)  # a staging table a crashed job left behind expires by itself
CONFLICT_RETRIES = 8  # concurrent MERGEs into the same partitions may conflict; MERGE is safe to repeat
CONFLICT_BACKOFF = Backoff(first_s=1.0, factor=2.0, max_s=30.0)


def make_client(sink: Any) -> Any:
    """A ``bigquery.Client`` for the sink's project and location (ADC credentials, or anonymous for an
    ``http://`` emulator endpoint)."""
    from google.cloud import bigquery

    kwargs: dict[str, Any] = {"project": sink.project or None, "location": sink.location or None}
    if sink.api_endpoint:
        from google.api_core.client_options import ClientOptions

        kwargs["client_options"] = ClientOptions(api_endpoint=str(sink.api_endpoint))
        if str(sink.api_endpoint).startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()
    return bigquery.Client(**kwargs)


def table_id(sink: Any, client: Any) -> str:
    return f"{sink.project or client.project}.{sink.dataset}.{sink.table}"


def bigquery_schema() -> list[Any]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(c.name, c.type, mode="NULLABLE", description=c.description) for c in COLUMNS]


@contextlib.contextmanager
def one_line(sink: Any) -> Iterator[None]:
    """Any failure as one line naming the table (the client's messages span many lines)."""
    try:
        yield
    except SinkError:
        raise
    except Exception as err:
        where = f"{sink.project or '(default project)'}.{sink.dataset}.{sink.table}"
        raise SinkError(f"navitune: BigQuery sink {where}: {error_line(err)}") from None


def prepare_bigquery(sink: Any, client: Any = None) -> str:
    """Create the dataset and the table if missing (and add columns a newer navitune has); return the
    table id. Run before the simulation, so missing credentials or permissions fail in seconds."""
    with one_line(sink):
        client = client or make_client(sink)
        return _ensure_table(client, sink)


def _ensure_table(client: Any, sink: Any) -> str:
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    retry = bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S)
    tid = table_id(sink, client)
    dataset_id = tid.rsplit(".", 1)[0]
    try:
        client.get_dataset(dataset_id, retry=retry)
    except NotFound:
        dataset = bigquery.Dataset(dataset_id)
        dataset.location = sink.location or None
        client.create_dataset(dataset, exists_ok=True, retry=retry)
    try:
        table = client.get_table(tid, retry=retry)
    except NotFound:
        table = bigquery.Table(tid, schema=bigquery_schema())
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=PARTITION_BY
        )
        table.clustering_fields = list(CLUSTER_BY)
        table.description = "navitune: one row per driver and operating day of every run and sweep trial"
        client.create_table(table, exists_ok=True, retry=retry)  # parallel trials may race to create it
        return tid
    have = {f.name: f.field_type for f in table.schema}
    wrong = [f"{n} is {have[n]}, expected {t}" for n, t in COLUMN_TYPES.items()
             if n in have and _canonical(have[n]) != t]
    if wrong:
        raise SinkError(f"navitune: BigQuery table {tid} does not match the result schema: {'; '.join(wrong)}")
    missing = [f for f in bigquery_schema() if f.name not in have]
    if missing:
        table.schema = list(table.schema) + missing
        client.update_table(table, ["schema"], retry=retry)
    return tid


def _canonical(field_type: str) -> str:
    """The legacy type names the API may return, as standard SQL names."""
    return {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(field_type, field_type)


def write_bigquery(sink: Any, rows: dict[str, np.ndarray], context: dict[str, Any], client: Any = None) -> int:
    """Load the rows of one job and replace the earlier rows of its key (see the module docstring)."""
    check_columns([*context, *rows])
    n = len(next(iter(rows.values())))
    payload = ndjson(rows, context)
    with one_line(sink):
        from google.cloud import bigquery

        client = client or make_client(sink)
        retry = bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S)
        tid = _ensure_table(client, sink)
        staging_id = f"{tid}_staging_{uuid.uuid4().hex[:12]}"
        staging = bigquery.Table(staging_id, schema=bigquery_schema())
        staging.expires = dt.datetime.now(dt.timezone.utc) + STAGING_TTL
        client.create_table(staging, retry=retry)
        try:
            # no size: the resumable upload (the multipart one sends content type */*, which the emulator rejects)
            job = client.load_table_from_file(
                io.BytesIO(payload), staging_id, rewind=True,
                job_config=bigquery.LoadJobConfig(
                    schema=bigquery_schema(), source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                ),
            )
            job.result(timeout=JOB_TIMEOUT_S)
            if job.output_rows is not None and int(job.output_rows) != n:
                raise SinkError(f"navitune: BigQuery load into {staging_id} wrote {job.output_rows} of {n} rows")
            _merge(client, tid, staging_id, context)
        finally:
            try:
                client.delete_table(staging_id, not_found_ok=True, retry=retry)
            except Exception as err:  # it expires by itself
                log.warning("could not delete the staging table %s (%s); it expires in %s",
                            staging_id, type(err).__name__, STAGING_TTL)
    return n


def merge_sql(table: str, staging: str) -> str:
    """Delete the key's earlier rows and insert the staged ones, atomically (``ON FALSE``: no row matches,
    so every target row is "not matched by source" and every staged row "not matched")."""
    cols = ", ".join(quote(c.name, "bigquery") for c in COLUMNS)
    return (
        f"MERGE `{table}` AS T\nUSING `{staging}` AS S\nON FALSE\n"
        f"WHEN NOT MATCHED BY SOURCE AND {key_predicate('bigquery', 'T')} THEN DELETE\n"
        f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({cols})"
    )


def _merge(client: Any, table: str, staging: str, context: dict[str, Any]) -> None:
    from google.api_core.exceptions import BadRequest, Conflict
    from google.cloud import bigquery

    params = [bigquery.ScalarQueryParameter("run_id", "STRING", context.get("run_id"))]
    params += [bigquery.ScalarQueryParameter(k, COLUMN_TYPES[k], context.get(k)) for k in KEY]
    config = bigquery.QueryJobConfig(query_parameters=params)
    sql = merge_sql(table, staging)

    def concurrent_update(err: BaseException) -> bool:
        text = str(err).lower()
        return isinstance(err, (BadRequest, Conflict)) and ("concurrent update" in text or "serialize access" in text)

    call_with_retries(lambda: client.query(sql, job_config=config).result(timeout=JOB_TIMEOUT_S),
                      attempts=CONFLICT_RETRIES, retry_on=concurrent_update, backoff=CONFLICT_BACKOFF)


def ndjson(rows: dict[str, np.ndarray], context: dict[str, Any]) -> bytes:
    """The rows as newline-delimited JSON (NaN as null: JSON has no NaN)."""
    n = len(next(iter(rows.values())))
    columns: dict[str, list[Any]] = {}
    for k, v in rows.items():
        a = np.asarray(v)
        values = a.tolist()
        if a.dtype.kind == "f" and np.isnan(a).any():
            values = [None if x != x else x for x in values]
        columns[k] = values
    constants = {k: v for k, v in context.items() if k not in rows}
    lines = []
    for i in range(n):
        record = dict(constants)
        for k, values in columns.items():
            record[k] = values[i]
        lines.append(json.dumps(record, allow_nan=False))
    return ("\n".join(lines) + "\n").encode()


def query_bigquery(
    sink: Any, sql: str, params: dict[str, Any] | None = None, client: Any = None
) -> list[dict[str, Any]]:
    """Rows of a query as dicts; ``params`` are STRING/INT64/FLOAT64 named parameters (``@name``)."""
    with one_line(sink):
        from google.cloud import bigquery

        client = client or make_client(sink)
        kinds = {str: "STRING", int: "INT64", float: "FLOAT64", bool: "BOOL"}
        config = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter(k, kinds.get(type(v), "STRING"), v) for k, v in (params or {}).items()
        ])
        return [dict(row.items()) for row in client.query(sql, job_config=config).result(timeout=JOB_TIMEOUT_S)]
