"""The designs data lake: output contract (layout), locations (paths), run lifecycle (publish), readers (reader)."""
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError, design_key, make_pair_id, today_utc, validate_run_date
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.publish import (DedupeReport, RunPlan, RunStatus, config_digest, conform_designs, data_files,
                                     dedupe_check, prepare_run, publish_run, run_status, wipe_run, write_designs)
from fashiongen.lake.reader import (complete_run_files, designs_for_user, duckdb_connect, latest_complete_run,
                                    list_complete_runs, polars_storage_options, read_manifest, read_run)

__all__ = [
    "DESIGNS_SCHEMA", "LakeError", "LakePaths", "design_key", "make_pair_id", "today_utc", "validate_run_date",
    "DedupeReport", "RunPlan", "RunStatus", "config_digest", "conform_designs", "data_files", "dedupe_check",
    "prepare_run", "publish_run", "run_status", "wipe_run", "write_designs",
    "complete_run_files", "designs_for_user", "duckdb_connect", "latest_complete_run", "list_complete_runs",
    "polars_storage_options", "read_manifest", "read_run",
]
