"""`fashiongen demo` end to end on configs/tiny.yaml: every step's files, the final printout and its values, and a
rerun that reuses what exists (the published run date is a no-op)."""
from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest

from fashiongen import storage
from fashiongen.cli import main
from fashiongen.config import load_config
from fashiongen.lake import list_complete_runs, read_manifest, read_run
from fixtures import REPO, needs_fmnist

pytestmark = [needs_fmnist, pytest.mark.slow]  # the whole pipeline, on a local Ray
CONFIG = REPO / "configs" / "tiny.yaml"
MODELS = ["bprmf", "dvbpr", "judge", "oracle", "poprank"]  # --baselines poprank,bprmf, DVBPR, its judge, the ceiling


def printed_auc_table(out: str) -> dict[str, list[str]]:
    """model -> its three AUC cells ("0.6123 [0.5800, 0.6400]" or "n/a") in the demo's final AUC table."""
    table = out[out.rindex("## Recommenders"):].split("\n## ")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ")]
    header, *body = rows
    assert header[1:4] == ["AUC full [95% CI]", "AUC sampled-100 [95% CI]", "AUC cold [95% CI]"]
    return {row[0]: row[1:4] for row in body}


def test_demo_runs_the_pipeline_and_a_rerun_reuses_it(ray_local, tmp_path, capsys):
    lake = tmp_path / "lake"
    args = ["demo", "--config", str(CONFIG), "--baselines", "poprank,bprmf", "--sheets", "2",
            f"lake_uri={lake}", f"data.catalogue_uri={lake}/catalogue", f"train.storage_path={lake}/train",
            f"generation.judge_uri={lake}/models/recommender/judge.pt", "run_date=2026-11-26"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "lift, oracle (true preference, simulated shoppers)" in out
    assert "=== [10/10] contact sheets" in out
    designs = out[out.rindex("## Designs"):]
    for judge in ("learned scorer (climbed)", "true taste (simulated shoppers)", "held-out scorer"):
        assert f"| {judge} | 30 |" in designs  # every published pair judged by all three
    assert "realism (in-domain, 30 designs" in designs

    # The AUC table: one row per model, the simulated catalogue's ceiling included; every AUC a probability, and
    # the printed figures are the ones written to results.parquet.
    results = pq.read_table(lake / "evaluation" / "recommender" / "test" / "results.parquet").to_pylist()
    assert sorted(r["model"] for r in results) == MODELS
    printed = printed_auc_table(out)
    assert sorted(printed) == MODELS
    for row in results:
        model, cells = row["model"], printed[row["model"]]
        for metric, cell in zip(("auc_full", "auc_sampled100", "auc_cold"), cells):
            value = row[metric]
            if metric == "auc_cold" and not math.isfinite(value):  # no test user whose positive is cold
                assert cell == "n/a", model
                continue
            assert 0.0 <= value <= 1.0, f"{model} {metric} = {value}"
            assert float(cell.split()[0]) == pytest.approx(value, abs=5e-5), f"{model} {metric}: printed {cell}"

    assert sorted(p.name for p in (lake / "models" / "recommender").iterdir()) == \
        ["bprmf.pt", "dvbpr.pt", "judge.pt", "poprank.pt"]
    assert (lake / "models" / "generator.pt").is_file()

    # The designs table: top_k ranked designs for every (user, category) pair of the published run.
    top_k = load_config(CONFIG).design.top_k
    assert list_complete_runs(str(lake)) == ["2026-11-26"]
    manifest = read_manifest(str(lake), "2026-11-26")
    run = read_run(str(lake), "2026-11-26", columns=["pair_id", "user_id", "category", "rank"])
    assert len(set(run.column("user_id").to_pylist())) == 3  # generation.max_users
    assert manifest["pairs"] == len(set(run.column("pair_id").to_pylist())) == 3 * 10  # users x categories
    assert run.num_rows == manifest["rows"] == manifest["pairs"] * top_k
    assert sorted(set(run.column("rank").to_pylist())) == list(range(1, top_k + 1))

    sheets = sorted((lake / "pictures" / "run_date=2026-11-26").iterdir())
    assert len(sheets) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in sheets)
    assert all(str(p) in out for p in sheets)

    assert main(args) == 0
    again = capsys.readouterr().out
    assert "Designs run 2026-11-26 (skip)" in again  # published: nothing recomputed
    assert read_manifest(str(lake), "2026-11-26") == manifest
    assert storage.exists(str(lake / "catalogue" / "catalogue.json"))
