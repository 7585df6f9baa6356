"""`fashiongen generate` killed with SIGKILL at every stage of a run (inside the Iceberg commit too), on a 2-CPU Ray
(the reference machine), then rerun: no reader (pyiceberg, Polars) ever sees a partial run, each resume finishes
(Ray Data's checkpoint filter takes a CPU of its own: the pool is sized so it cannot starve the read and write tasks),
and the date holds each pair exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fashiongen.config import load_config
from fashiongen.lake import publish, reader
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.table import Lake
from fixtures import fmnist_catalogue_with_models, needs_fmnist

pytestmark = [pytest.mark.slow, needs_fmnist]
NUM_USERS, TOP_K, DATE = 12, 2, "2026-11-26"
# The CLI, whose local Ray (started only when there is something to design) has exactly 2 CPUs, whatever the
# machine has.
DRIVER = ("import functools, sys, ray; ray.init = functools.partial(ray.init, num_cpus=2); "
          "from fashiongen.cli import main; sys.exit(main(sys.argv[1:]))")
RAY_STARTED = "Started a local Ray instance"  # what ray.init prints


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A simulated catalogue, untrained-but-real DVBPR and LSGAN checkpoints, and the generate command line."""
    base = tmp_path_factory.mktemp("crash")
    cfg = load_config(None, [f"data.catalogue_uri={base}/catalogue", "data.max_items=300",
                             f"simulation.num_users={NUM_USERS}", "recommender.k=8"])
    lake = str(base / "lake")
    catalogue = fmnist_catalogue_with_models(cfg, str(base / "dvbpr.pt"), str(base / "generator.pt"), lake)
    args = ["generate", f"lake_uri={lake}", f"data.catalogue_uri={cfg.data.catalogue_uri}", f"run_date={DATE}",
            f"generation.recommender_uri={base / 'dvbpr.pt'}", f"generation.generator_uri={base / 'generator.pt'}",
            "design.restarts=4", "design.steps=20", f"design.top_k={TOP_K}", "design.batch_pairs=4",
            "generation.pairs_per_block=4", "generation.rows_per_file=8"]
    return lake, args, NUM_USERS * len(catalogue.categories)


def _start(args: list[str], fault: str = "") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("FASHIONGEN_FAULTS", None)
    if fault:
        env["FASHIONGEN_FAULTS"] = fault
    return subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 420) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _reap(process)
        out, _ = process.communicate()
        pytest.fail(f"the run hung for {timeout:.0f} s (a resume that never finishes):\n{out[-3000:]}")
    _reap(process)  # a killed driver's Ray workers can outlive it: end its whole session
    return process.returncode, out


def _reap(process: subprocess.Popen) -> None:
    """SIGKILL every process of the driver's session (Ray gives its workers process groups of their own)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == process.pid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def _written(lake: str) -> publish.DedupeReport:
    return publish.dedupe_check(lake, DATE)


def _readers_see(lake: str) -> tuple[list[str], int, int]:
    """(published dates, rows through pyiceberg, rows through Polars' Iceberg scan): what any reader sees."""
    import polars as pl

    table = Lake(lake).table()
    if table is None or table.current_snapshot() is None:
        return reader.list_complete_runs(lake), 0, 0
    return (reader.list_complete_runs(lake), table.scan().to_arrow().num_rows,
            pl.scan_iceberg(table).select(pl.len()).collect().item())


def test_killed_at_every_stage_then_rerun_publishes_each_pair_exactly_once(setup):
    lake, args, pairs = setup
    nothing = ([], 0, 0)

    code, out = _finish(_start(args, "generate.before_pipeline=kill"))  # 1. before any design is written
    assert code == -signal.SIGKILL, out[-2000:]
    assert _readers_see(lake) == nothing and _written(lake).rows == 0

    process = _start(args)  # 2. mid-write: kill -9 from outside once the first designs file is confirmed (others
    checkpoint = Path(LakePaths(lake).checkpoint(DATE))  # may be half written: Ray's resume deletes those)
    deadline = time.monotonic() + 400
    while process.poll() is None and time.monotonic() < deadline and not [
            f for f in checkpoint.glob("*.parquet") if not f.name.endswith(publish.PENDING_SUFFIX)]:
        time.sleep(0.05)
    _reap(process)
    code, out = _finish(process)
    assert code == -signal.SIGKILL, out[-2000:]
    mid = _written(lake)
    assert 0 < mid.pairs < pairs and mid.duplicate_rows == 0, (mid, pairs)
    assert _readers_see(lake) == nothing  # readers never see the partial run

    code, out = _finish(_start(args, "generate.before_publish=kill"))  # 3. resume, killed before the commit
    assert code == -signal.SIGKILL, out[-2000:]
    full = _written(lake)
    assert full.pairs == pairs and full.duplicate_rows == 0 and full.uncommitted == 0, full
    assert _readers_see(lake) == nothing

    code, out = _finish(_start(args, "lake.before_catalog_commit=kill"))  # 4. killed inside the commit: the
    assert code == -signal.SIGKILL, out[-2000:]  # snapshot's files are written, the catalog does not point at them
    assert _readers_see(lake) == nothing and _written(lake) == full
    assert "pairs are staged already" in out and RAY_STARTED not in out, out[-2000:]  # nothing to design: no Ray

    code, out = _finish(_start(args, "generate.after_publish=kill"))  # 5. resume: commit, then killed
    assert code == -signal.SIGKILL, out[-2000:]
    assert _readers_see(lake) == ([DATE], pairs * TOP_K, pairs * TOP_K)
    record = reader.run_info(lake, DATE)
    assert record["pairs"] == pairs and record["rows"] == pairs * TOP_K

    code, out = _finish(_start(args))  # 6. the published date is a no-op
    assert code == 0 and RAY_STARTED not in out, out[-2000:]
    assert "(skip)" in out and reader.run_info(lake, DATE) == record
    table = reader.read_run(lake, DATE, columns=["pair_id", "rank"])
    assert table.num_rows == pairs * TOP_K and len(set(table.column("pair_id").to_pylist())) == pairs
    assert len(Lake(lake).table().snapshots()) == 1  # one snapshot for the date, through every crash
