"""The designs data lake: layout and output contract (layout), run lifecycle (publish), readers (reader)."""
from fashiongen.lake.layout import (DESIGNS_SCHEMA, LakeError, checkpoint_uri, design_key, image_uri,
                                    images_run_uri, make_pair_id, manifest_uri, run_uri, today_utc,
                                    validate_run_date)
from fashiongen.lake.publish import (DedupeReport, RunPlan, RunStatus, config_digest, conform_designs, data_files,
                                     dedupe_check, prepare_run, publish_run, run_status, wipe_run, write_designs)
from fashiongen.lake.reader import (complete_run_files, designs_for_user, duckdb_connect, latest_complete_run,
                                    list_complete_runs, polars_storage_options, read_manifest, read_run)

__all__ = [
    "DESIGNS_SCHEMA", "LakeError", "checkpoint_uri", "design_key", "image_uri", "images_run_uri", "make_pair_id",
    "manifest_uri", "run_uri", "today_utc", "validate_run_date",
    "DedupeReport", "RunPlan", "RunStatus", "config_digest", "conform_designs", "data_files", "dedupe_check",
    "prepare_run", "publish_run", "run_status", "wipe_run", "write_designs",
    "complete_run_files", "designs_for_user", "duckdb_connect", "latest_complete_run", "list_complete_runs",
    "polars_storage_options", "read_manifest", "read_run",
]
