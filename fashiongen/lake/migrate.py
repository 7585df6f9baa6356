"""`fashiongen lake migrate`: import the runs of a Hive-layout lake (before the Iceberg table) into the designs table,
once, idempotently.

A Hive-layout run is `<lake>/designs/run_date=D/` with Parquet files and a `_SUCCESS` JSON manifest (format
"fashiongen.designs/1") listing them. Each published one whose date the table does not hold yet is committed as
that date's snapshot, its files registered where they lie (nothing is copied) and its manifest's record carried
into the snapshot's properties. Dates the table already holds are left alone; runs without a valid manifest (a
crash, a foreign folder, Spark's empty `_SUCCESS`) are reported and never imported.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from fashiongen import storage
from fashiongen.lake.layout import LakeError, validate_run_date
from fashiongen.lake.publish import check_staged, commit_files
from fashiongen.lake.table import Lake, as_lake, committed_dates, snapshot_properties

log = logging.getLogger(__name__)

LEGACY_FORMAT = "fashiongen.designs/1"
LEGACY_KEYS = ("run_date", "model_version", "rows", "pairs", "files", "created_at", "fashiongen_version",
               "config_digest")


@dataclass
class MigrationReport:
    migrated: list[str] = field(default_factory=list)  # dates committed now
    already: list[str] = field(default_factory=list)  # dates the table held before
    skipped: dict[str, str] = field(default_factory=dict)  # folder under designs/ -> why it was not imported


def legacy_manifest(lake: Lake | str, run_date: str) -> dict:
    """A Hive-layout run's `_SUCCESS` manifest, checked; LakeError saying what is wrong with it."""
    uri = as_lake(lake).paths.legacy_manifest(run_date)
    fix = "not a fashiongen manifest: left out of the table"
    data = storage.read_bytes(uri)
    if not data.strip():
        raise LakeError(f"manifest {uri} is empty (as Hadoop/Spark write _SUCCESS), {fix}")
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LakeError(f"manifest {uri} is not valid JSON ({exc}), {fix}") from None
    if not isinstance(manifest, dict):
        raise LakeError(f"manifest {uri} is not a JSON object, {fix}")
    missing = [k for k in LEGACY_KEYS if k not in manifest]
    if missing or manifest.get("run_date") != run_date:
        raise LakeError(f"manifest {uri} lacks {missing or 'the matching run_date'}, {fix}")
    if not isinstance(manifest["files"], list) or not manifest["files"] \
            or not all(isinstance(f, str) and "/" not in f and f.endswith(".parquet") for f in manifest["files"]):
        raise LakeError(f"manifest {uri} has no list of Parquet file names under 'files', {fix}")
    return manifest


def legacy_runs(lake: Lake | str) -> tuple[list[str], dict[str, str]]:
    """(dates of Hive-layout runs with a `_SUCCESS` file, {folder under designs/: why it is no run}). The table's
    own folders (data/, metadata/) are neither."""
    lake = as_lake(lake)
    dates, skipped = [], {}
    for name in storage.list_dir(lake.paths.designs()):
        if name in ("data", "metadata") or name.startswith(("_", ".")):
            continue
        try:
            date = validate_run_date(name.removeprefix("run_date=")) if name.startswith("run_date=") else None
        except LakeError:
            date = None
        if date is None:
            skipped[name] = "not a run_date=YYYY-MM-DD folder of a calendar date (not a fashiongen run)"
        elif storage.exists(lake.paths.legacy_manifest(date)):
            dates.append(date)
        else:
            skipped[name] = "no _SUCCESS manifest (a run that crashed before its commit)"
    return sorted(dates), skipped


def pending_migration(lake: Lake | str) -> list[str]:
    """Hive-layout run dates with a valid manifest that the table does not hold (what `lake migrate` imports)."""
    dates, _ = legacy_runs(lake)
    held = set(committed_dates(lake)) if dates else set()
    pending = []
    for date in dates:
        try:
            if date not in held and legacy_manifest(lake, date):
                pending.append(date)
        except LakeError:
            continue  # `lake migrate` reports why
    return pending


def migrate(lake: Lake | str) -> MigrationReport:
    """Import every published Hive-layout run the table lacks, one snapshot per date (see the module docstring)."""
    lake = as_lake(lake)
    report = MigrationReport()
    dates, report.skipped = legacy_runs(lake)
    held = set(committed_dates(lake))
    for date in dates:
        if date in held:
            report.already.append(date)
            continue
        try:
            manifest = legacy_manifest(lake, date)
            files = [storage.join(lake.paths.legacy_run(date), f) for f in manifest["files"]]
            absent = [f for f in files if not storage.exists(f)]
            if absent:
                raise LakeError(f"its manifest lists {len(absent)} missing file(s), e.g. {absent[0]}")
            checked = check_staged(files, date, manifest["model_version"], older_schema=True)
        except LakeError as exc:
            report.skipped[f"run_date={date}"] = str(exc)
            continue
        record = {**{k: manifest[k] for k in LEGACY_KEYS if k != "files"}, "rows": checked.rows,
                  "pairs": checked.pairs, "attempt": "",
                  "attachments": manifest.get("attachments") or {}, "properties": manifest.get("properties") or {}}
        commit_files(lake, date, files, {**snapshot_properties(record), "fashiongen.migrated_from": "hive"},
                     replace=False)
        report.migrated.append(date)
        log.info("migrated Hive-layout run %s into %s (%d rows, %d files)", date, lake.table_name, checked.rows,
                 len(files))
    return report
