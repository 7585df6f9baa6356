"""Read the designs table: only committed runs exist for a reader (the table's current snapshot, or an older one).

    read_run(lake)                              latest run as a pyarrow Table
    read_run(lake, "2026-08-20", category="Dress")
    designs_for_user(lake, "u42")               one user's designs of the latest run
    run_info(lake, "2026-08-20")                what the run's snapshot records (model version, counts, digest...)
    con = duckdb_connect(lake); con.sql("SELECT category, avg(lift) FROM designs GROUP BY 1")
    pl.scan_iceberg(Lake.of(cfg).table())       any Iceberg engine reads the table itself

`lake` is a `table.Lake` (a lake URI and its catalog settings) or a local lake's path. Credentials come from the AWS
environment and are never logged or returned in messages.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from fashiongen import storage
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError, validate_run_date
from fashiongen.lake.table import Lake, as_lake, committed_dates, record_from_snapshot

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table


def list_complete_runs(lake: Lake | str) -> list[str]:
    """Run dates (YYYY-MM-DD, ascending) the table holds; runs being written or crashed are never listed."""
    return committed_dates(lake)


def latest_complete_run(lake: Lake | str) -> str | None:
    runs = list_complete_runs(lake)
    return runs[-1] if runs else None


def _table(lake: Lake) -> "Table":
    table = lake.table()
    if table is None or table.current_snapshot() is None:
        raise LakeError(f"no designs run is published in {lake.uri!r} (table {lake.table_name}): run the generate "
                        "job first, or `fashiongen lake migrate` for a lake written before the Iceberg table")
    return table


def _data_files(table: "Table", run_dates: Sequence[str] | None) -> list[str]:
    from pyiceberg.expressions import AlwaysTrue, In

    where = AlwaysTrue() if run_dates is None else In("run_date", list(run_dates))
    return sorted(task.file.file_path.removeprefix("file://") for task in table.scan(row_filter=where).plan_files())


def run_info(lake: Lake | str, run_date: str) -> dict:
    """The record of a published run: what its snapshot's properties carry (run_date, model_version, rows, pairs,
    created_at, fashiongen_version, config_digest, attempt, attachments, properties) plus `snapshot_id` and `files`
    (its data files now: s3:// URIs or local paths). LakeError when the date is not published."""
    lake = as_lake(lake)
    validate_run_date(run_date)
    if run_date not in committed_dates(lake):
        raise LakeError(f"run {run_date} is not published in {lake.uri!r}; list published runs with "
                        "`fashiongen lake runs` or finish the run with the generate job")
    from pyiceberg.table.snapshots import ancestors_of

    table = _table(lake)
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        summary = snapshot.summary.additional_properties if snapshot.summary is not None else {}
        if summary.get("fashiongen.run_date") == run_date:
            record = record_from_snapshot(summary, f"snapshot {snapshot.snapshot_id} of {lake.table_name}")
            return {**record, "snapshot_id": snapshot.snapshot_id, "files": _data_files(table, [run_date])}
    raise LakeError(f"run {run_date} of {lake.table_name} has no snapshot with fashiongen's properties left (expired "
                    "snapshots?): its rows are readable, its record is not; rerun it with force=true to restore it")


def read_attachment(lake: Lake | str, run_date: str, name: str) -> pa.Table | None:
    """A Parquet file committed with a published run (`publish_run(attachments=...)`), after checking its size and
    SHA-256 against the run's record; None when the run has no attachment of that name. LakeError when it is
    missing or altered."""
    lake = as_lake(lake)
    entry = run_info(lake, run_date)["attachments"].get(name)
    if entry is None:
        return None
    uri = storage.join(lake.uri, entry["path"])
    try:
        data = storage.read_bytes(uri)
    except (FileNotFoundError, storage.StorageError):
        data = None
    if data is None or len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise LakeError(f"{name} of run {run_date} ({uri}) is missing or does not match its snapshot's record; rerun "
                        f"{run_date} with force=true")
    return pq.read_table(pa.BufferReader(data))


def _resolve_date(lake: Lake, run_date: str | None) -> str:
    if run_date:
        return validate_run_date(run_date)
    latest = latest_complete_run(lake)
    if latest is None:
        raise LakeError(f"no published designs run in {lake.uri!r}: run the generate job first")
    return latest


def complete_run_files(lake: Lake | str, run_dates: Sequence[str] | None = None) -> list[str]:
    """URIs (s3://… or local paths) of the data files the table's current snapshot holds for the given (default:
    all) run dates: what a plain Parquet reader may read."""
    lake = as_lake(lake)
    table = lake.table()
    if table is None or table.current_snapshot() is None:
        return []
    return _data_files(table, run_dates)


def _filter(run_date: str, user_id: str | Sequence[str] | None,
            category: str | Sequence[str] | None) -> "BooleanExpression":
    from pyiceberg.expressions import And, EqualTo, In

    expr = EqualTo("run_date", run_date)
    for name, wanted in (("user_id", user_id), ("category", category)):
        if wanted is not None:
            expr = And(expr, In(name, [wanted] if isinstance(wanted, str) else list(wanted)))
    return expr


def _schema(columns: Sequence[str] | None) -> pa.Schema:
    unknown = sorted(set(columns or []) - set(DESIGNS_SCHEMA.names))
    if unknown:
        raise LakeError(f"unknown designs columns {unknown}; known: {DESIGNS_SCHEMA.names}")
    return pa.schema([DESIGNS_SCHEMA.field(c) for c in columns]) if columns else DESIGNS_SCHEMA


def scan_run(lake: Lake | str, run_date: str | None = None, *, columns: Sequence[str] | None = None,
             user_id: str | Sequence[str] | None = None, category: str | Sequence[str] | None = None,
             row_filter: "BooleanExpression | None" = None) -> Iterator[pa.RecordBatch]:
    """Record batches of one published run (default: the latest), streamed with DESIGNS_SCHEMA's types (stop early
    to read a sample without loading the run); `row_filter` is a pyiceberg expression and-ed to the others."""
    from pyiceberg.expressions import And

    lake = as_lake(lake)
    date = _resolve_date(lake, run_date)
    schema = _schema(columns)
    if date not in committed_dates(lake):
        raise LakeError(f"run {date} is not published in {lake.uri!r}; list published runs with "
                        "`fashiongen lake runs`")
    expr = _filter(date, user_id, category)
    scan = _table(lake).scan(row_filter=expr if row_filter is None else And(expr, row_filter),
                             selected_fields=tuple(schema.names))
    try:
        for batch in scan.to_arrow_batch_reader():
            yield pa.RecordBatch.from_arrays([batch.column(n).cast(schema.field(n).type) for n in schema.names],
                                             schema=schema)
    except OSError as exc:
        raise storage.StorageError(f"cannot read run {date} in {lake.uri!r}: {exc} (check the lake URI and "
                                   "credentials; if files are missing rerun that date with force=true)") from None


def best_designs_sample(lake: Lake | str, run_date: str, columns: Sequence[str], limit: int) -> pa.Table:
    """Up to `limit` best designs (rank 1) of a published run, reading only the row groups it takes (a plain Parquet
    read of the snapshot's files: a pyiceberg scan materialises whole files, 50k rows each at scale)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    schema = _schema(columns)
    files = complete_run_files(lake, [run_date])
    if not files or limit <= 0:
        return schema.empty_table()
    fs, _ = storage.filesystem(files[0])
    dataset = ds.dataset([storage.filesystem(f)[1] for f in files], format="parquet", filesystem=fs)
    batches, rows = [], 0
    for batch in dataset.to_batches(columns=list(schema.names), filter=pc.field("rank") == 1,
                                    batch_size=min(limit, 4096), batch_readahead=0, fragment_readahead=0):
        batches.append(batch.cast(schema))
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=schema).slice(0, limit)


def read_run(lake: Lake | str, run_date: str | None = None, *, user_id: str | Sequence[str] | None = None,
             category: str | Sequence[str] | None = None, columns: list[str] | None = None) -> pa.Table:
    """One published run (default: the latest) as a Table with DESIGNS_SCHEMA's types, optionally filtered."""
    return pa.Table.from_batches(list(scan_run(lake, run_date, columns=columns, user_id=user_id, category=category)),
                                 schema=_schema(columns))


def designs_for_user(lake: Lake | str, user_id: str, run_date: str | None = None) -> pa.Table:
    """Every design of one user in one published run (default: latest), sorted by category then rank."""
    table = read_run(lake, run_date, user_id=user_id)
    return table.sort_by([("category", "ascending"), ("rank", "ascending")])


def duckdb_connect(lake: Lake | str, view: str = "designs"):
    """A DuckDB connection with a view `view` over every published run (the current snapshot's data files, so it
    needs no DuckDB extension; with `iceberg` installed, `iceberg_scan` on the table's metadata works too).

    S3 goes through fsspec (`register_filesystem(s3fs)`, works offline and with AWS_ENDPOINT_URL). With no published
    run the view is empty but typed."""
    import duckdb

    lake = as_lake(lake)
    _identifier(view)
    con = duckdb.connect()
    if storage.is_s3(lake.uri):
        con.register_filesystem(storage.fsspec_filesystem(lake.uri))
    files = complete_run_files(lake)
    if files:
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({_sql_list(files)}, "
                    "hive_partitioning=false, union_by_name=true)")
    else:
        con.register(view, DESIGNS_SCHEMA.empty_table())
    return con


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise LakeError(f"view name {name!r} must be a plain identifier (letters, digits, underscore)")
    return name


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + item.replace("'", "''") + "'" for item in items) + "]"


def polars_storage_options() -> dict[str, str]:
    """Polars/object_store `storage_options` from the standard AWS environment (empty keys are left out).

    Holds secrets: pass it to Polars, never log or print it."""
    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    options = {
        "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
        "aws_session_token": env.get("AWS_SESSION_TOKEN"),
        "aws_region": region,
        "aws_endpoint_url": endpoint,
    }
    if endpoint and endpoint.startswith("http://"):
        options["aws_allow_http"] = "true"
    return {k: v for k, v in options.items() if v}
