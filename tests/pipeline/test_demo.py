"""`fashiongen demo` end to end on configs/tiny.yaml: every step's files, the final printout, and a rerun that
reuses what exists (the published run date is a no-op)."""
from __future__ import annotations

import pytest

from fashiongen import storage
from fashiongen.cli import main
from fashiongen.lake import reader
from fixtures import REPO, needs_fmnist

pytestmark = [needs_fmnist, pytest.mark.slow]  # the whole pipeline, on a local Ray


def test_demo_runs_the_pipeline_and_a_rerun_reuses_it(ray_local, tmp_path, capsys):
    lake = tmp_path / "lake"
    args = ["demo", "--config", str(REPO / "configs" / "tiny.yaml"), "--baselines", "poprank,bprmf", "--sheets", "2",
            f"lake_uri={lake}", f"data.catalogue_uri={lake}/catalogue", f"train.storage_path={lake}/train",
            "run_date=2026-11-26"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for row in ("| poprank |", "| bprmf |", "| dvbpr |", "| oracle |"):
        assert row in out  # the AUC table, the simulated catalogue's ceiling included
    assert "lift, oracle (true preference, simulated shoppers)" in out
    assert "=== [9/9] contact sheets" in out

    assert sorted(p.name for p in (lake / "models" / "recommender").iterdir()) == ["bprmf.pt", "dvbpr.pt", "poprank.pt"]
    assert (lake / "models" / "generator.pt").is_file()
    assert (lake / "evaluation" / "recommender" / "test" / "results.parquet").is_file()
    assert reader.list_complete_runs(str(lake)) == ["2026-11-26"]
    run = reader.read_run(str(lake), "2026-11-26", columns=["user_id", "category", "rank"])
    assert len(set(run.column("user_id").to_pylist())) == 3  # generation.max_users
    assert run.num_rows == 3 * 10 * 2  # users x categories x top_k
    sheets = sorted((lake / "pictures" / "run_date=2026-11-26").iterdir())
    assert len(sheets) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in sheets)
    assert all(str(p) in out for p in sheets)
    manifest = reader.read_manifest(str(lake), "2026-11-26")

    assert main(args) == 0
    again = capsys.readouterr().out
    assert "Designs run 2026-11-26 (skip)" in again  # published: nothing recomputed
    assert reader.read_manifest(str(lake), "2026-11-26") == manifest
    assert storage.exists(str(lake / "catalogue" / "catalogue.json"))
