"""`fashiongen demo` end to end on configs/tiny.yaml, as the README runs it (its own process and local Ray, so the
console is the user's): every step's files, the final printout and its values, each progress line printed once and
none of Ray's internal chatter, the report's path last, and a rerun that reuses what exists (the published run date
is a no-op)."""
from __future__ import annotations

import collections
import math
import os
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from fashiongen import storage
from fashiongen.config import load_config
from fashiongen.lake import list_complete_runs, run_info, read_run
from fixtures import REPO, needs_fmnist

pytestmark = [needs_fmnist, pytest.mark.slow]  # the whole pipeline, on its own local Ray
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


def demo(args: list[str], cwd) -> str:
    """Run `fashiongen demo` as a user does: a fresh process that starts its own Ray; stdout and stderr as one."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "FASHIONGEN_FAULTS", "RAY_DATA_DISABLE_PROGRESS_BARS")}  # as a user's shell
    done = subprocess.run([sys.executable, "-m", "fashiongen.cli", *args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:]
    return done.stdout


def progress_lines(out: str) -> list[str]:
    """The training workers' per-epoch lines, with Ray's "(Actor pid=...)" prefix."""
    return [line for line in out.splitlines() if re.search(r"\[(recommender|gan)\] .*epoch \d+/\d+", line)]


def test_demo_runs_the_pipeline_and_a_rerun_reuses_it(tmp_path):
    lake = tmp_path / "lake"
    args = ["demo", "--config", str(CONFIG), "--baselines", "poprank,bprmf", "--sheets", "2",
            f"lake_uri={lake}", f"data.catalogue_uri={lake}/catalogue", f"train.storage_path={lake}/train",
            f"generation.judge_uri={lake}/models/recommender/judge.pt", "run_date=2026-11-26"]
    out = demo(args, tmp_path)
    assert "lift, oracle (true preference, simulated shoppers)" in out
    assert "=== [11/12] contact sheets" in out and "=== [12/12] report" in out

    # A quiet console: each progress line once (DVBPR, its judge and the GAN each print one per epoch), none of
    # Ray's internal chatter, and the report's path is the last line.
    lines = progress_lines(out)
    tiny = load_config(CONFIG)
    assert len(lines) == 2 * tiny.recommender.epochs + tiny.gan.epochs  # DVBPR, its judge, the GAN
    assert [line for line, n in collections.Counter(lines).items() if n > 1] == []
    for noise in ("Failed to query Ray Train Controller", "Reporting training result", "Progress bars",
                  "tqdm is not installed", "Checkpoint successfully created", "RayDeprecationWarning",
                  "Running Dataset", "PreemptionWatcher"):
        assert noise not in out, noise
    last = out.strip().splitlines()[-1]
    report = lake / "reports" / "run_date=2026-11-26" / "index.html"
    assert last == f"- the run's report (open it in a browser): {report}" and report.is_file()
    assert "<h2>Judges</h2>" in report.read_text()
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
    manifest = run_info(str(lake), "2026-11-26")
    run = read_run(str(lake), "2026-11-26", columns=["pair_id", "user_id", "category", "rank"])
    assert len(set(run.column("user_id").to_pylist())) == 3  # generation.max_users
    assert manifest["pairs"] == len(set(run.column("pair_id").to_pylist())) == 3 * 10  # users x categories
    assert run.num_rows == manifest["rows"] == manifest["pairs"] * top_k
    assert sorted(set(run.column("rank").to_pylist())) == list(range(1, top_k + 1))

    sheets = sorted((lake / "pictures" / "run_date=2026-11-26").iterdir())
    assert len(sheets) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in sheets)
    assert all(str(p) in out for p in sheets)

    again = demo(args, tmp_path)
    assert "Designs run 2026-11-26 (skip)" in again  # published: nothing recomputed
    assert run_info(str(lake), "2026-11-26") == manifest
    assert storage.exists(str(lake / "catalogue" / "catalogue.json"))
