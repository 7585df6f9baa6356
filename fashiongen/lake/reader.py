"""Read the designs lake: only committed runs (those with a `_SUCCESS` manifest) are ever listed or read.

    read_run(lake_uri)                          latest complete run as a pyarrow Table
    read_run(lake_uri, "2026-08-20", category="Dress")
    designs_for_user(lake_uri, "u42")           one user's designs of the latest complete run
    con = duckdb_connect(lake_uri); con.sql("SELECT category, avg(lift) FROM designs GROUP BY 1")
    pl.scan_parquet(complete_run_files(lake_uri), hive_partitioning=True, storage_options=polars_storage_options())

Readers use the manifest's file list, not a folder listing, so files of a run still being written (or a stray
file) are never read. A `_SUCCESS` that is not a fashiongen manifest (Hadoop/Spark write empty ones) and folders
that are not `run_date=YYYY-MM-DD` are skipped with a warning and listed by `foreign_runs`; they never block
the valid runs. Credentials come from the AWS environment and are never logged or returned in messages.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fashiongen import storage
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError, validate_run_date
from fashiongen.lake.paths import LakePaths

MANIFEST_KEYS = ("run_date", "model_version", "rows", "pairs", "files", "created_at", "fashiongen_version",
                 "config_digest")
log = logging.getLogger(__name__)


def _scan_runs(lake_uri: str) -> tuple[list[str], dict[str, str]]:
    """(dates of runs with a valid manifest, {name under designs/: why it is skipped}). Partial runs (no manifest
    yet) and hidden `_`/`.` names are neither."""
    dates, skipped = [], {}
    for name in storage.list_dir(LakePaths(lake_uri).designs()):
        if name.startswith(("_", ".")):
            continue
        try:
            date = validate_run_date(name.removeprefix("run_date=")) if name.startswith("run_date=") else None
        except LakeError:
            date = None
        if date is None:
            skipped[name] = ("not a run_date=YYYY-MM-DD folder of a calendar date (not a fashiongen run; move it "
                             "out of designs/)")
            continue
        if not storage.exists(LakePaths(lake_uri).manifest(date)):
            continue
        try:
            read_manifest(lake_uri, date)
        except LakeError as exc:
            skipped[name] = str(exc)
            continue
        dates.append(date)
    return sorted(dates), skipped


def list_complete_runs(lake_uri: str) -> list[str]:
    """Run dates (YYYY-MM-DD, ascending) with a valid manifest; partial and foreign runs are never listed (a
    warning names each foreign one)."""
    dates, skipped = _scan_runs(lake_uri)
    for name, why in skipped.items():
        log.warning("skipping %s: %s", storage.join(LakePaths(lake_uri).designs(), name), why)
    return dates


def foreign_runs(lake_uri: str) -> dict[str, str]:
    """{name under designs/: why it was skipped} for folders that are not runs and runs whose `_SUCCESS` is not a
    fashiongen manifest."""
    return _scan_runs(lake_uri)[1]


def latest_complete_run(lake_uri: str) -> str | None:
    runs = list_complete_runs(lake_uri)
    return runs[-1] if runs else None


def read_manifest(lake_uri: str, run_date: str) -> dict:
    """The manifest of a complete run; LakeError when the run is not committed or the manifest is unreadable."""
    uri = LakePaths(lake_uri).manifest(run_date)
    if not storage.exists(uri):
        raise LakeError(f"run {run_date} in {lake_uri!r} is not complete (no {uri}); list complete runs with "
                        "list_complete_runs() or finish the run with the generate job")
    fix = "not a fashiongen manifest: remove that folder or rerun that date with force=true"
    data = storage.read_bytes(uri)
    if not data.strip():
        raise LakeError(f"manifest {uri} is empty (as Hadoop/Spark write _SUCCESS), {fix}")
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LakeError(f"manifest {uri} is not valid JSON ({exc}), {fix}") from None
    if not isinstance(manifest, dict):
        raise LakeError(f"manifest {uri} is not a JSON object, {fix}")
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing or manifest.get("run_date") != run_date:
        raise LakeError(f"manifest {uri} lacks {missing or 'the matching run_date'}, {fix}")
    if not isinstance(manifest["files"], list) or not all(isinstance(f, str) for f in manifest["files"]):
        raise LakeError(f"manifest {uri} has no list of file names under 'files', {fix}")
    return manifest


def read_attachment(lake_uri: str, run_date: str, name: str) -> pa.Table | None:
    """A Parquet file committed with a complete run (`publish_run(attachments=...)`), after checking its size and
    SHA-256 against the manifest; None when the run has no attachment of that name. LakeError when it is missing
    or altered."""
    manifest = read_manifest(lake_uri, run_date)
    entry = (manifest.get("attachments") or {}).get(name)
    if entry is None:
        return None
    uri = storage.join(lake_uri, entry["path"])
    try:
        data = storage.read_bytes(uri)
    except (FileNotFoundError, storage.StorageError):
        data = None
    if data is None or len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise LakeError(f"{name} of run {run_date} ({uri}) is missing or does not match its manifest; rerun "
                        f"{run_date} with force=true")
    return pq.read_table(pa.BufferReader(data))


def _resolve_date(lake_uri: str, run_date: str | None) -> str:
    if run_date:
        return validate_run_date(run_date)
    latest = latest_complete_run(lake_uri)
    if latest is None:
        raise LakeError(f"no complete designs run in {lake_uri!r}: run the generate job first")
    return latest


def complete_run_files(lake_uri: str, run_dates: Sequence[str] | None = None) -> list[str]:
    """Full URIs (s3://… or local paths) of every committed file of the given (default: all complete) runs."""
    dates = list(run_dates) if run_dates is not None else list_complete_runs(lake_uri)
    files = []
    for date in dates:
        base = LakePaths(lake_uri).run(date)
        files += [storage.join(base, name) for name in read_manifest(lake_uri, date)["files"]]
    if not storage.is_s3(lake_uri):
        files = [storage.local_path(f) for f in files]
    return files


def read_run(lake_uri: str, run_date: str | None = None, *, user_id: str | Sequence[str] | None = None,
             category: str | Sequence[str] | None = None, columns: list[str] | None = None) -> pa.Table:
    """One complete run (default: the latest) as a Table with DESIGNS_SCHEMA, optionally filtered."""
    date = _resolve_date(lake_uri, run_date)
    manifest = read_manifest(lake_uri, date)
    fs, base = storage.filesystem(LakePaths(lake_uri).run(date))
    paths = [f"{base}/{name}" for name in manifest["files"]]
    unknown = sorted(set(columns or []) - set(DESIGNS_SCHEMA.names))
    if unknown:
        raise LakeError(f"unknown designs columns {unknown}; known: {DESIGNS_SCHEMA.names}")
    expr = None
    for name, wanted in (("user_id", user_id), ("category", category)):
        if wanted is None:
            continue
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        term = pc.field(name).isin(values)
        expr = term if expr is None else expr & term
    try:
        dataset = ds.dataset(paths, schema=DESIGNS_SCHEMA, format="parquet", filesystem=fs)
        return dataset.to_table(columns=columns, filter=expr)
    except OSError as exc:
        raise storage.StorageError(f"cannot read run {date} in {lake_uri!r}: {exc} (check the lake URI and "
                                   "credentials; if files are missing rerun that date with force=true)") from None


def scan_run(lake_uri: str, run_date: str, *, columns: list[str], filter: pc.Expression | None = None):
    """Record batches of one complete run, streamed (stop early to read a sample without loading the run)."""
    manifest = read_manifest(lake_uri, run_date)
    fs, base = storage.filesystem(LakePaths(lake_uri).run(run_date))
    dataset = ds.dataset([f"{base}/{name}" for name in manifest["files"]], schema=DESIGNS_SCHEMA, format="parquet",
                         filesystem=fs)
    yield from dataset.to_batches(columns=columns, filter=filter)


def designs_for_user(lake_uri: str, user_id: str, run_date: str | None = None) -> pa.Table:
    """Every design of one user in one complete run (default: latest), sorted by category then rank."""
    table = read_run(lake_uri, run_date, user_id=user_id)
    return table.sort_by([("category", "ascending"), ("rank", "ascending")])


def duckdb_connect(lake_uri: str, view: str = "designs"):
    """A DuckDB connection that can read the lake, with a view `view` over every complete run.

    S3 goes through fsspec (`register_filesystem(s3fs)`, works offline and with AWS_ENDPOINT_URL); `run_date`
    is read as the Hive partition, declared VARCHAR. With no complete run the view is empty but typed."""
    import duckdb

    _identifier(view)
    con = duckdb.connect()
    if storage.is_s3(lake_uri):
        con.register_filesystem(storage.fsspec_filesystem(lake_uri))
    files = complete_run_files(lake_uri)
    if files:
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({_sql_list(files)}, "
                    "hive_partitioning=true, hive_types={'run_date': 'VARCHAR'}, union_by_name=true)")
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
