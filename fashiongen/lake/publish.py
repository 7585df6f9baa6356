"""Run lifecycle of the nightly designs output: prepare, write, verify, commit.

    plan = prepare_run(lake_uri, run_date, force=False)
    if plan.action == "skip": exit 0                    # already committed: a rerun is a no-op
    ... Ray Data: read pairs -> map_batches -> write_parquet(plan.run_uri, mode="append") with
        CheckpointConfig(id_column="pair_id", checkpoint_path=plan.checkpoint_uri, delete_checkpoint_on_success=False)
    publish_run(lake_uri, run_date, model_version=..., config=cfg)   # verifies, writes _SUCCESS last, drops checkpoint

States of one date: `absent` (nothing under its prefixes), `partial` (files but no manifest: a run crashed or is
running), `complete` (manifest present). The job must keep `delete_checkpoint_on_success=False`: `publish_run`
deletes the checkpoint only after the manifest is written, so a crash between "all rows written" and "manifest
written" resumes from a checkpoint that marks every pair done instead of recomputing (and duplicating) everything.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from fashiongen import storage
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError, validate_run_date
from fashiongen.lake.paths import LakePaths

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "fashiongen.designs/1"


class RunStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    ABSENT = "absent"


@dataclass(frozen=True)
class RunPlan:
    """What the job should do for one date. `action`: skip (already committed), resume (keep written files,
    the checkpoint skips done pairs) or start (nothing usable there: write from scratch)."""

    action: Literal["skip", "resume", "start"]
    previous_status: RunStatus
    run_date: str
    run_uri: str
    checkpoint_uri: str
    images_uri: str
    reason: str
    superseded: tuple[str, ...] = ()  # force on a complete run: its files, kept (and read) until the new commit


@dataclass(frozen=True)
class DedupeReport:
    """Row counts of one run's data files (committed or not)."""

    rows: int
    pairs: int  # unique pair_id
    designs: int  # unique (pair_id, rank)
    files: int

    @property
    def duplicate_rows(self) -> int:
        return self.rows - self.designs


def _manifest_files(lake_uri: str, run_date: str) -> list[str]:
    """The files the committed manifest of a run lists ([] when it is not a fashiongen manifest)."""
    try:
        return list(json.loads(storage.read_bytes(LakePaths(lake_uri).manifest(run_date))).get("files", []))
    except (ValueError, AttributeError):
        return []


def data_files(lake_uri: str, run_date: str) -> list[str]:
    """Parquet files of one run, relative to its prefix (hidden `_`/`.` names and temp files excluded)."""
    return [f for f in storage.list_files(LakePaths(lake_uri).run(run_date))
            if f.endswith(".parquet") and not any(part.startswith(("_", ".")) for part in f.split("/"))]


def run_status(lake_uri: str, run_date: str) -> RunStatus:
    """complete (manifest present) | partial (some output or checkpoint, no manifest) | absent."""
    paths = LakePaths(lake_uri)
    if storage.exists(paths.manifest(run_date)):
        return RunStatus.COMPLETE
    for uri in (paths.run(run_date), paths.checkpoint(run_date), paths.images_run(run_date)):
        if storage.list_files(uri):
            return RunStatus.PARTIAL
    return RunStatus.ABSENT


def wipe_run(lake_uri: str, run_date: str) -> None:
    """Delete one date's designs (manifest first, so readers stop listing it at once), images and checkpoint."""
    paths = LakePaths(lake_uri)
    storage.delete(paths.manifest(run_date))
    for uri in (paths.run(run_date), paths.images_run(run_date), paths.checkpoint(run_date)):
        storage.delete(uri)


def prepare_run(lake_uri: str, run_date: str, force: bool = False) -> RunPlan:
    """Decide (and prepare the lake for) what a run of `run_date` must do; see RunPlan."""
    validate_run_date(run_date)
    status = run_status(lake_uri, run_date)

    paths = LakePaths(lake_uri)

    def plan(action: Literal["skip", "resume", "start"], reason: str, superseded: tuple[str, ...] = ()) -> RunPlan:
        log.info("designs run %s: %s (%s)", run_date, action, reason)
        return RunPlan(action, status, run_date, paths.run(run_date), paths.checkpoint(run_date),
                       paths.images_run(run_date), reason, superseded)

    if force and status == RunStatus.COMPLETE:
        # Replace, never wipe first: the published files and manifest stay (readers keep reading them) while the
        # new files are written beside them; publish_run swaps the manifest, then deletes the old files.
        kept = tuple(_manifest_files(lake_uri, run_date))
        for name in data_files(lake_uri, run_date):
            if name not in kept:  # a force attempt that crashed before its commit
                storage.delete(storage.join(paths.run(run_date), name))
        storage.delete(paths.checkpoint(run_date))
        return plan("start", "force: recomputing beside the published run, swapped in at the commit", kept)
    if force and status == RunStatus.PARTIAL:
        wipe_run(lake_uri, run_date)
        return plan("start", "force: wiped the partial run")
    if status == RunStatus.COMPLETE:
        storage.delete(LakePaths(lake_uri).checkpoint(run_date))  # left over if a crash hit between commit and cleanup
        return plan("skip", "already complete; pass force=true to recompute")
    if status == RunStatus.PARTIAL:
        if storage.list_files(LakePaths(lake_uri).checkpoint(run_date)) or not data_files(lake_uri, run_date):
            return plan("resume", "partial run: the checkpoint skips pairs already written")
        # Rows but no checkpoint: nothing says which pairs are done, so appending would duplicate them.
        wipe_run(lake_uri, run_date)
        return plan("start", "partial run without a checkpoint: wiped it")
    return plan("start", "no previous output")


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


def write_designs(table: pa.Table, lake_uri: str, run_date: str) -> str:
    """Write one Parquet part into a run's prefix (for writers without Ray Data); returns its URI.
    Every row's run_date must equal `run_date`. Commit the run afterwards with publish_run."""
    table = conform_designs(table)
    _check_run_dates(table.column("run_date"), run_date, f"table for {run_date}")
    uri = storage.join(LakePaths(lake_uri).run(run_date), f"part-{uuid.uuid4().hex}.parquet")
    storage.write_table(table, uri)
    return uri


def _check_run_dates(column: pa.ChunkedArray, run_date: str, where: str) -> None:
    other = [d for d in pc.unique(column).to_pylist() if d != run_date]
    if other:
        raise LakeError(f"{where} holds rows with run_date {other[:3]}; every row must have run_date={run_date}")


def _dataset(lake_uri: str, run_date: str, files: list[str]) -> ds.Dataset:
    fs, base = storage.filesystem(LakePaths(lake_uri).run(run_date))
    return ds.dataset([f"{base}/{f}" for f in files], format="parquet", filesystem=fs)


def _report(keys: pa.Table, files: int) -> DedupeReport:
    designs = keys.group_by(["pair_id", "rank"]).aggregate([]).num_rows
    return DedupeReport(rows=keys.num_rows, pairs=pc.count_distinct(keys.column("pair_id")).as_py(),
                        designs=designs, files=files)


def dedupe_check(lake_uri: str, run_date: str, exclude: Sequence[str] = ()) -> DedupeReport:
    """Count rows, unique pair_ids and unique (pair_id, rank) over one run's data files, committed or not
    (less `exclude`: the files of a published run being replaced)."""
    files = [f for f in data_files(lake_uri, run_date) if f not in set(exclude)]
    if not files:
        return DedupeReport(rows=0, pairs=0, designs=0, files=0)
    return _report(_dataset(lake_uri, run_date, files).to_table(columns=["pair_id", "rank"]), len(files))


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


def _package_version() -> str:
    try:
        return metadata.version("fashiongen")
    except metadata.PackageNotFoundError:
        return "unknown"


def publish_run(lake_uri: str, run_date: str, *, model_version: str,
                config: Any | Mapping[str, Any] | None = None, attachments: Mapping[str, str] | None = None,
                replacing: Sequence[str] = (), properties: Mapping[str, str] | None = None) -> dict:
    """Verify a written run and commit it: the `_SUCCESS` manifest is the last object written (atomically), then
    the run's checkpoint is deleted. `attachments` (name -> URI under the lake, written before) are committed with
    the run: the manifest names each with its size and SHA-256, and `reader.read_attachment` checks them. Raises
    LakeError (and writes nothing) when the run is empty, already committed, has files off the schema, rows of
    another date or model_version, duplicate (pair_id, rank) rows, or an attachment missing or outside the lake.
    `replacing`: the files of the published run this commit replaces (RunPlan.superseded); the new manifest is
    written over the old one in one atomic put, then those files are deleted. `properties`: plain strings the
    manifest carries for readers (the design mode, the held-out judge's version)."""
    validate_run_date(run_date)
    if storage.exists(LakePaths(lake_uri).manifest(run_date)) and not replacing:
        raise LakeError(f"run {run_date} in {lake_uri!r} is already published; rerun with force=true to replace it")
    files = [f for f in data_files(lake_uri, run_date) if f not in set(replacing)]
    if not files:
        raise LakeError(f"run {run_date} in {lake_uri!r} has no Parquet files under {LakePaths(lake_uri).run(run_date)}; "
                        "nothing to publish")
    dataset = _dataset(lake_uri, run_date, files)
    for fragment in dataset.get_fragments():
        try:
            conform_designs(fragment.physical_schema.empty_table())
        except LakeError as exc:
            raise LakeError(f"file {fragment.path}: {exc}; rerun {run_date} with force=true") from None
    keys = dataset.to_table(columns=["run_date", "model_version", "pair_id", "rank"])
    _check_run_dates(keys.column("run_date"), run_date, f"run {run_date}")
    versions = [v for v in pc.unique(keys.column("model_version")).to_pylist() if v != model_version]
    if versions:
        raise LakeError(f"run {run_date} holds rows of model_version {versions[:3]}, not {model_version!r} (a resume "
                        "after a model change?); rerun it with force=true")
    report = _report(keys, len(files))
    if report.duplicate_rows:
        raise LakeError(f"run {run_date} has {report.duplicate_rows} duplicate (pair_id, rank) rows in "
                        f"{report.files} files; rerun it with force=true")
    manifest = {
        "format": MANIFEST_FORMAT,
        "run_date": run_date,
        "model_version": model_version,
        "rows": report.rows,
        "pairs": report.pairs,
        "files": files,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fashiongen_version": _package_version(),
        "config_digest": config_digest(config) if config is not None else "",
        "attachments": {name: _attachment(lake_uri, uri) for name, uri in (attachments or {}).items()},
        "properties": {str(k): str(v) for k, v in (properties or {}).items()},
    }
    storage.write_bytes(LakePaths(lake_uri).manifest(run_date), json.dumps(manifest, indent=1).encode())
    for name in replacing:
        storage.delete(storage.join(LakePaths(lake_uri).run(run_date), name))
    storage.delete(LakePaths(lake_uri).checkpoint(run_date))
    log.info("published designs run %s: %d rows, %d pairs, %d files", run_date, report.rows, report.pairs, len(files))
    return manifest
