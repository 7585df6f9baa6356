"""Run lifecycle of the designs table: prepare, stage, verify, commit one Iceberg snapshot per run date.

    plan = prepare_run(lake, run_date, force=False)
    if plan.action == "skip": exit 0                    # already committed: a rerun is a no-op
    ... Ray Data: read pairs -> map_batches -> write_parquet(plan.run_uri) with
        CheckpointConfig(id_column="pair_id", checkpoint_path=plan.checkpoint_uri, delete_checkpoint_on_success=False)
    publish_run(lake, run_date, model_version=..., config=cfg)   # verifies, commits the snapshot, drops checkpoint

Why stage and then commit rather than Ray's `write_iceberg`: Ray Data's checkpoint commits a block's pair ids as soon
as that block's files are written, while `write_iceberg` commits only when the whole write ends, so a crash in
between would mark pairs done whose rows no snapshot holds. Here the files are staged in the attempt's folder under
the table's location (`LakePaths.attempt`) and stay there across a crash, so a resume skips exactly the pairs on disk;
`publish_run` then registers them all in one snapshot (`--force`: the date's old files are removed from the table in
that same snapshot), whose properties carry the run's model version, config digest, counts and attached files.

States of one date: `complete` (the table's current snapshot holds it), `partial` (staged files, a checkpoint or
images, not committed: a run crashed or is running), `absent`. The job must keep `delete_checkpoint_on_success=False`:
`publish_run` deletes the checkpoint only after the commit, so a crash between "all rows written" and the commit
resumes from a checkpoint that marks every pair done instead of recomputing (and duplicating) everything.

A write task cut off mid-file (SIGKILL, a lost node) leaves a torn or unconfirmed data file: Ray Data writes a
*pending* checkpoint (`<file prefix>.pending.parquet`) before the data file and renames it once the file is whole,
and its resume deletes the data files a pending checkpoint names. Until then those files are not staged: every count
here (`staged_files`, `dedupe_check`) skips them and reports how many (`DedupeReport.uncommitted`), and `publish_run`
refuses while any is left.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from fashiongen import faults, storage
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError, pair_id_bytes, validate_run_date
from fashiongen.lake.paths import ATTEMPT_PREFIX
from fashiongen.lake.table import Lake, as_lake, committed_dates, file_uri, snapshot_properties

log = logging.getLogger(__name__)

COMMIT_TRIES = 5  # optimistic commits retried when another writer committed first (another date, say)
PENDING_SUFFIX = ".pending.parquet"  # Ray Data's checkpoint of a write not yet confirmed (two-phase commit)


class RunStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    ABSENT = "absent"


@dataclass(frozen=True)
class RunPlan:
    """What the job should do for one date. `action`: skip (already committed), resume (keep this attempt's files,
    the checkpoint skips done pairs) or start (a new attempt: write from scratch). `run_uri`: where this attempt
    writes its data files."""

    action: Literal["skip", "resume", "start"]
    previous_status: RunStatus
    run_date: str
    run_uri: str
    checkpoint_uri: str
    images_uri: str
    reason: str
    attempt: str = ""


@dataclass(frozen=True)
class DedupeReport:
    """Row counts of one attempt's staged data files."""

    rows: int
    pairs: int  # unique pair_id
    designs: int  # unique (pair_id, rank)
    files: int
    uncommitted: int = 0  # data files of writes cut off before their checkpoint committed (a resume deletes them)

    @property
    def duplicate_rows(self) -> int:
        return self.rows - self.designs


def _marker(lake: Lake, run_date: str) -> str:
    return lake.paths.work(run_date, "attempt")


def current_attempt(lake: Lake | str, run_date: str) -> str:
    """The id of the attempt now writing `run_date` ("" when none)."""
    lake = as_lake(lake)
    try:
        return storage.read_bytes(_marker(lake, run_date)).decode().strip()
    except (FileNotFoundError, storage.StorageError):
        return ""


def _new_attempt(lake: Lake, run_date: str) -> str:
    attempt = uuid.uuid4().hex[:12]
    storage.write_bytes(_marker(lake, run_date), attempt.encode())
    return attempt


def staged_files(lake: Lake | str, run_date: str) -> list[str]:
    """URIs of the Parquet files the current attempt at `run_date` wrote whole (hidden `_`/`.` names and the files of
    writes whose checkpoint is still pending excluded: see `uncommitted_files`)."""
    return _attempt_files(as_lake(lake), run_date)[0]


def uncommitted_files(lake: Lake | str, run_date: str) -> list[str]:
    """URIs of the current attempt's data files whose write was cut off before Ray Data confirmed it (a pending
    checkpoint names their prefix): possibly torn, never counted, deleted by the resume."""
    return _attempt_files(as_lake(lake), run_date)[1]


def _attempt_files(lake: Lake, run_date: str) -> tuple[list[str], list[str]]:
    """(staged, uncommitted) data files of the current attempt at `run_date`."""
    attempt = current_attempt(lake, run_date)
    if not attempt:
        return [], []
    base = lake.paths.attempt(run_date, attempt)
    pending = tuple(name[:-len(PENDING_SUFFIX)] for name in storage.list_files(lake.paths.checkpoint(run_date))
                    if "/" not in name and name.endswith(PENDING_SUFFIX))
    staged, uncommitted = [], []
    for f in storage.list_files(base):
        if f.endswith(".parquet") and not any(part.startswith(("_", ".")) for part in f.split("/")):
            (uncommitted if pending and f.rsplit("/", 1)[-1].startswith(pending) else staged).append(
                storage.join(base, f))
    return staged, uncommitted


def _committed_attempts(lake: Lake, run_date: str) -> set[str]:
    """Attempts at `run_date` that some snapshot still in the table's history committed (their files may be read
    by time travel, so they are never deleted here)."""
    table = lake.table()
    if table is None:
        return set()
    return {s.summary["fashiongen.attempt"] for s in table.snapshots()
            if s.summary is not None and s.summary.get("fashiongen.run_date") == run_date
            and s.summary.get("fashiongen.attempt")}


def run_status(lake: Lake | str, run_date: str) -> RunStatus:
    """complete (committed) | partial (staged files, a checkpoint or images, not committed) | absent."""
    lake = as_lake(lake)
    if run_date in committed_dates(lake):
        return RunStatus.COMPLETE
    for uri in (lake.paths.run_data(run_date), lake.paths.checkpoint(run_date), lake.paths.images_run(run_date)):
        if storage.list_files(uri):
            return RunStatus.PARTIAL
    return RunStatus.ABSENT


def _discard_uncommitted(lake: Lake, run_date: str, keep_images: bool) -> None:
    """Delete what earlier attempts at a date left that no snapshot holds: their data folders, the checkpoint, the
    work area (and the images, unless a committed run's images are being replaced in place)."""
    committed = _committed_attempts(lake, run_date)
    for name in storage.list_dir(lake.paths.run_data(run_date)):
        if name.startswith(ATTEMPT_PREFIX) and name.removeprefix(ATTEMPT_PREFIX) not in committed:
            storage.delete(storage.join(lake.paths.run_data(run_date), name))
    for uri in (lake.paths.checkpoint(run_date), lake.paths.work(run_date)):
        storage.delete(uri)
    if not keep_images:
        storage.delete(lake.paths.images_run(run_date))


def prepare_run(lake: Lake | str, run_date: str, force: bool = False) -> RunPlan:
    """Decide (and prepare the lake for) what a run of `run_date` must do; see RunPlan."""
    lake = as_lake(lake)
    validate_run_date(run_date)
    status = run_status(lake, run_date)

    def plan(action: Literal["skip", "resume", "start"], reason: str, attempt: str = "") -> RunPlan:
        log.info("designs run %s: %s (%s)", run_date, action, reason)
        return RunPlan(action, status, run_date, lake.paths.attempt(run_date, attempt) if attempt else "",
                       lake.paths.checkpoint(run_date), lake.paths.images_run(run_date), reason, attempt)

    if status == RunStatus.COMPLETE and not force:
        storage.delete(lake.paths.checkpoint(run_date))  # left over if a crash hit between commit and cleanup
        return plan("skip", "already complete; pass force=true to recompute")
    if status == RunStatus.PARTIAL and not force:
        attempt = current_attempt(lake, run_date)
        if attempt and (storage.list_files(lake.paths.checkpoint(run_date)) or not staged_files(lake, run_date)):
            return plan("resume", "partial run: the checkpoint skips pairs already written", attempt)
        why = "partial run without a checkpoint: discarded it"  # nothing says which pairs are done
    elif status == RunStatus.COMPLETE:
        why = "force: a new attempt, committed in place of the published run (which readers keep reading until then)"
    elif status == RunStatus.PARTIAL:
        why = "force: discarded the partial run"
    else:
        why = "no previous output"
    _discard_uncommitted(lake, run_date, keep_images=status == RunStatus.COMPLETE)
    return plan("start", why, _new_attempt(lake, run_date))


def conform_designs(table: pa.Table) -> pa.Table:
    """`table` with exactly DESIGNS_SCHEMA's columns, order and types; LakeError naming what does not fit."""
    missing = [n for n in DESIGNS_SCHEMA.names if n not in table.column_names]
    extra = [n for n in table.column_names if n not in DESIGNS_SCHEMA.names]
    if missing or extra:
        raise LakeError(f"designs table does not match DESIGNS_SCHEMA: missing {missing}, unexpected {extra}")
    table = table.select(DESIGNS_SCHEMA.names)
    for f in DESIGNS_SCHEMA:
        if not f.nullable and table.column(f.name).null_count:
            raise LakeError(f"designs column {f.name!r} has {table.column(f.name).null_count} nulls; it is required")
    try:
        return table.cast(DESIGNS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise LakeError(f"designs table cannot be cast to DESIGNS_SCHEMA: {exc}") from None


def write_designs(table: pa.Table, lake: Lake | str, run_date: str) -> str:
    """Stage one Parquet part in the current attempt at `run_date` (for writers without Ray Data; an attempt is
    begun when none is); returns its URI. Every row's run_date must equal `run_date`. Commit with publish_run."""
    lake = as_lake(lake)
    table = conform_designs(table)
    _check_run_dates(table.column("run_date"), run_date, f"table for {run_date}")
    attempt = current_attempt(lake, run_date) or _new_attempt(lake, run_date)
    uri = storage.join(lake.paths.attempt(run_date, attempt), f"part-{uuid.uuid4().hex}.parquet")
    storage.write_table(table, uri)
    return uri


def _check_run_dates(column: pa.ChunkedArray, run_date: str, where: str) -> None:
    other = [d for d in pc.unique(column).to_pylist() if d != run_date]
    if other:
        raise LakeError(f"{where} holds rows with run_date {other[:3]}; every row must have run_date={run_date}")


def _dataset(files: list[str]) -> ds.Dataset:
    fs, _ = storage.filesystem(files[0])
    return ds.dataset([storage.filesystem(f)[1] for f in files], format="parquet", filesystem=fs)


@contextlib.contextmanager
def _readable_parquet(files: list[str], run_date: str) -> Iterator[None]:
    """Turn Arrow's error on a torn staged file (one Ray Data never knew of: another writer's) into a LakeError
    naming the first such file and the fix."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        bad = next((f for f in files if not _readable(f)), files[0])
        raise LakeError(f"staged file {bad} of run {run_date} is not readable Parquet (a write cut off?); rerun "
                        f"{run_date} with force=true ({str(exc).splitlines()[0][:120]})") from None


def _readable(uri: str) -> bool:
    fs, path = storage.filesystem(uri)
    try:
        with fs.open_input_file(path) as f:
            pq.ParquetFile(f).schema_arrow
        return True
    except (pa.ArrowInvalid, OSError):
        return False


def _design_keys(pair_id: pa.Array, rank: pa.Array, run_date: str) -> np.ndarray:
    """One 20-byte key per row (the pair_id's 16 bytes, then its rank): a million designs hold 20 MB, not the
    strings and hash tables of an Arrow group-by."""
    keys = np.empty((len(pair_id), 20), np.uint8)
    keys[:, :16] = pair_id_bytes(pair_id, f"run {run_date}")
    keys[:, 16:] = rank.cast(pa.int32()).to_numpy(zero_copy_only=False).astype("<i4").view(np.uint8).reshape(-1, 4)
    return keys


def _report(batches: Iterable[pa.RecordBatch], run_date: str, files: int, uncommitted: int = 0) -> DedupeReport:
    """Counts over streamed (pair_id, rank) batches; only their compact keys are kept."""
    keys = [_design_keys(b.column("pair_id"), b.column("rank"), run_date) for b in batches]
    keys = np.concatenate(keys) if keys else np.empty((0, 20), np.uint8)
    pa.default_memory_pool().release_unused()  # the scanned batches are gone: give their buffers back
    pairs = np.unique(np.ascontiguousarray(keys[:, :16]).view("V16").ravel()).size
    return DedupeReport(rows=len(keys), pairs=pairs, designs=np.unique(keys.view("V20").ravel()).size, files=files,
                        uncommitted=uncommitted)


def dedupe_check(lake: Lake | str, run_date: str) -> DedupeReport:
    """Count rows, unique pair_ids and unique (pair_id, rank) over the current attempt's staged files (and the
    uncommitted files it skips)."""
    files, uncommitted = _attempt_files(as_lake(lake), run_date)
    if not files:
        return DedupeReport(rows=0, pairs=0, designs=0, files=0, uncommitted=len(uncommitted))
    with _readable_parquet(files, run_date):
        return _report(_dataset(files).to_batches(columns=["pair_id", "rank"]), run_date, len(files),
                       len(uncommitted))


def _attachment(lake_uri: str, uri: str) -> dict[str, Any]:
    """{"path" (relative to the lake), "bytes", "sha256"} of a file committed with a run."""
    root = lake_uri.rstrip("/") + "/"
    if not uri.startswith(root):
        raise LakeError(f"attachment {uri!r} is not under the lake {lake_uri!r}")
    if not storage.exists(uri):
        raise LakeError(f"attachment {uri!r} does not exist: write it before publishing the run")
    data = storage.read_bytes(uri)
    return {"path": uri[len(root):], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def config_digest(config: Any) -> str:
    """SHA-256 of a config (dataclass or mapping) as canonical JSON: which settings made a run, no values exposed."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def package_version() -> str:
    try:
        return metadata.version("fashiongen")
    except metadata.PackageNotFoundError:
        return "unknown"


def check_staged(files: list[str], run_date: str, model_version: str, older_schema: bool = False) -> DedupeReport:
    """LakeError (naming the file or the count) unless the staged files are one run's designs, once each.
    `older_schema`: files may lack nullable columns added to DESIGNS_SCHEMA since (the table reads them as null)."""
    with _readable_parquet(files, run_date):
        dataset = _dataset(files)
        schemas = [(fragment.path, fragment.physical_schema) for fragment in dataset.get_fragments()]
    for path, schema in schemas:
        try:
            empty = schema.empty_table()
            if older_schema:
                for f in DESIGNS_SCHEMA:
                    if f.nullable and f.name not in empty.column_names:
                        empty = empty.append_column(f.name, pa.nulls(0, f.type))
            conform_designs(empty)
        except LakeError as exc:
            raise LakeError(f"file {path}: {exc}; rerun {run_date} with force=true") from None

    def checked(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            _check_run_dates(batch.column("run_date"), run_date, f"run {run_date}")
            versions = [v for v in pc.unique(batch.column("model_version")).to_pylist() if v != model_version]
            if versions:
                raise LakeError(f"run {run_date} holds rows of model_version {versions[:3]}, not {model_version!r} "
                                "(a resume after a model change?); rerun it with force=true")
            yield batch

    with _readable_parquet(files, run_date):
        report = _report(checked(dataset.to_batches(columns=["run_date", "model_version", "pair_id", "rank"])),
                         run_date, len(files))
    if report.duplicate_rows:
        raise LakeError(f"run {run_date} has {report.duplicate_rows} duplicate (pair_id, rank) rows in "
                        f"{report.files} files; rerun it with force=true")
    return report


def commit_files(lake: Lake | str, run_date: str, files: list[str], properties: Mapping[str, str],
                 replace: bool) -> int:
    """Register `files` (Parquet of DESIGNS_SCHEMA, rows of `run_date` only) as the date's data in one snapshot:
    with `replace`, the date's current files leave the table in that same snapshot. Returns the snapshot id."""
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.expressions import EqualTo
    from pyiceberg.table import _parquet_files_to_data_files

    lake = as_lake(lake)
    uris = [file_uri(f) for f in files]
    for attempt in range(COMMIT_TRIES):
        table = lake.create_table()
        committed = run_date in committed_dates(lake)
        if committed and not replace:
            raise LakeError(f"run {run_date} in {lake.uri!r} is already published; rerun with force=true to replace "
                            "it")
        old = [task.file for task in table.scan(row_filter=EqualTo("run_date", run_date)).plan_files()] \
            if committed else []
        tx = table.transaction()
        with tx.update_snapshot(snapshot_properties=dict(properties)).overwrite() as snapshot:
            for data_file in old:
                snapshot.delete_data_file(data_file)
            for data_file in _parquet_files_to_data_files(tx.table_metadata, uris, table.io):
                if data_file.record_count:  # an empty file holds no rows (and no partition value)
                    snapshot.append_data_file(data_file)
        faults.fail_at(faults.planned(), "lake.before_catalog_commit")
        try:
            return tx.commit_transaction().current_snapshot().snapshot_id
        except CommitFailedException as exc:  # another writer committed first: retry on the new state
            if attempt == COMMIT_TRIES - 1:
                raise LakeError(f"could not commit run {run_date} to {lake.table_name} after {COMMIT_TRIES} tries "
                                f"({exc}); rerun it: its staged files are kept") from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def publish_run(lake: Lake | str, run_date: str, *, model_version: str,
                config: Any | Mapping[str, Any] | None = None, attachments: Mapping[str, str] | None = None,
                replace: bool = False, properties: Mapping[str, str] | None = None) -> dict:
    """Verify the current attempt's staged files and commit them as the date's snapshot, then delete the run's
    checkpoint; returns the run's record (`reader.run_info`). `attachments` (name -> URI under the lake, written
    before) are committed with the run: the snapshot names each with its size and SHA-256, and
    `reader.read_attachment` checks them. Raises LakeError (and commits nothing) when nothing is staged, the date is
    already committed (unless `replace`, which --force sets), a file is off the schema, or rows are of another
    date or model_version, or repeat a (pair_id, rank); or an attachment is missing or outside the lake.
    `properties`: plain strings the snapshot carries for readers (the design mode, the held-out judge's version)."""
    from fashiongen.lake.reader import run_info

    lake = as_lake(lake)
    validate_run_date(run_date)
    if not replace and run_date in committed_dates(lake):
        raise LakeError(f"run {run_date} in {lake.uri!r} is already published; rerun with force=true to replace it")
    files, uncommitted = _attempt_files(lake, run_date)
    if uncommitted:
        raise LakeError(f"run {run_date} in {lake.uri!r} has {len(uncommitted)} data files of writes cut off before "
                        f"they finished (e.g. {uncommitted[0]}); rerun {run_date} to resume, which deletes them")
    if not files:
        raise LakeError(f"run {run_date} in {lake.uri!r} has no staged Parquet files (under "
                        f"{lake.paths.run_data(run_date)}); nothing to publish")
    report = check_staged(files, run_date, model_version)
    record = {
        "run_date": run_date,
        "model_version": model_version,
        "rows": report.rows,
        "pairs": report.pairs,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fashiongen_version": package_version(),
        "config_digest": config_digest(config) if config is not None else "",
        "attempt": current_attempt(lake, run_date),
        "attachments": {name: _attachment(lake.uri, uri) for name, uri in (attachments or {}).items()},
        "properties": {str(k): str(v) for k, v in (properties or {}).items()},
    }
    snapshot = commit_files(lake, run_date, files, snapshot_properties(record), replace)
    storage.delete(lake.paths.checkpoint(run_date))
    storage.delete(_marker(lake, run_date))
    log.info("published designs run %s: %d rows, %d pairs, %d files (snapshot %d)", run_date, report.rows,
             report.pairs, len(files), snapshot)
    return run_info(lake, run_date)
