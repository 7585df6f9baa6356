"""The designs data lake: output contract (layout), locations (paths), the Iceberg table (table), run lifecycle
(publish), readers (reader), the import of Hive-layout lakes (migrate)."""
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError, design_key, make_pair_id, today_utc, validate_run_date
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.publish import (DedupeReport, RunPlan, RunStatus, config_digest, conform_designs, dedupe_check,
                                     prepare_run, publish_run, run_status, staged_files, write_designs)
from fashiongen.lake.reader import (complete_run_files, designs_for_user, duckdb_connect, latest_complete_run,
                                    list_complete_runs, polars_storage_options, read_run, run_info)
from fashiongen.lake.table import Lake

__all__ = [
    "DESIGNS_SCHEMA", "LakeError", "LakePaths", "Lake", "design_key", "make_pair_id", "today_utc", "validate_run_date",
    "DedupeReport", "RunPlan", "RunStatus", "config_digest", "conform_designs", "dedupe_check",
    "prepare_run", "publish_run", "run_status", "staged_files", "write_designs",
    "complete_run_files", "designs_for_user", "duckdb_connect", "latest_complete_run", "list_complete_runs",
    "polars_storage_options", "read_run", "run_info",
]
