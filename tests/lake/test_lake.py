"""The designs lake: output contract, safe keys, run lifecycle, readers (local folder and moto S3)."""
from __future__ import annotations

import json
import logging
import os
import re

import pyarrow as pa
import pytest

from fashiongen import storage
from fashiongen.data.images import decode_image
from fashiongen.lake import (DESIGNS_SCHEMA, LakeError, LakePaths, RunStatus, complete_run_files, config_digest,
                             dedupe_check, design_key, designs_for_user, duckdb_connect,
                             latest_complete_run, list_complete_runs, make_pair_id, polars_storage_options,
                             prepare_run, publish_run, read_manifest, read_run, run_status, validate_run_date,
                             write_designs)
from fashiongen.lake.reader import foreign_runs
from fixtures import fake_designs, write_complete

D1, D2 = "2026-08-19", "2026-08-20"
HOSTILE_IDS = ["../../etc", "a/b", "..", "/abs/path", "ünïcødé/東京", "x" * 5000, "a\\b", "nul\x00byte", "run_date=1999-01-01"]


@pytest.fixture
def lake(storage_root) -> str:
    return storage_root


# --- contract and keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "2026-8-1", "../2026-08-20", "", "2026-08-20/x"])
def test_bad_run_dates_are_rejected(bad):
    with pytest.raises(LakeError, match="run_date"):
        validate_run_date(bad)
    with pytest.raises(LakeError):
        LakePaths("lake").run(bad)


def test_image_keys_are_hashes_never_ids():
    pattern = re.compile(rf"^s3://lake/images/run_date={D1}/([0-9a-f]{{2}})/([0-9a-f]{{64}})\.png$")
    uris = set()
    for uid in HOSTILE_IDS:
        uri = LakePaths("s3://lake").image(D1, uid, "../Dress", 1)
        m = pattern.match(uri)
        assert m and m.group(2).startswith(m.group(1)), uri
        uris.add(uri)
    assert len(uris) == len(HOSTILE_IDS)
    assert design_key("u", "c", 1) == design_key("u", "c", 1) != design_key("u", "c", 2)
    assert design_key("a|b", "c", 1) != design_key("a", "b|c", 1)  # unambiguous encoding
    assert make_pair_id("a|b", "c") != make_pair_id("a", "b|c")
    with pytest.raises(LakeError, match="rank"):
        design_key("u", "c", 0)


def test_hostile_ids_never_become_paths(tmp_path):
    lake = str(tmp_path / "lake")
    table = fake_designs(D1, HOSTILE_IDS, categories=("Dress", "a/../b"), top_k=1)
    uris = [LakePaths(lake).image(D1, u, c, r) for u, c, r in
            zip(*(table.column(n).to_pylist() for n in ("user_id", "category", "rank")))]
    for uri, png in zip(uris, table.column("image_png").to_pylist()):
        storage.write_bytes(uri, png)
    write_designs(table.set_column(table.schema.get_field_index("image_uri"), "image_uri", pa.array(uris)), lake, D1)
    publish_run(lake, D1, model_version="m1")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]  # nothing escaped the lake
    allowed = re.compile(r"^(designs|images|run_date=\d{4}-\d{2}-\d{2}|[0-9a-f]{2}|[0-9a-f]{64}\.png"
                         r"|part-[0-9a-f]{32}\.parquet|_SUCCESS)$")
    for root, dirs, files in os.walk(tmp_path / "lake"):
        for name in dirs + files:
            assert allowed.match(name), os.path.join(root, name)
    back = read_run(lake, D1, user_id="../../etc")
    assert set(back.column("user_id").to_pylist()) == {"../../etc"}
    assert storage.read_bytes(back.column("image_uri")[0].as_py()) == back.column("image_png")[0].as_py()
    assert read_run(lake, D1, user_id="x" * 5000).num_rows == 2


# --- lifecycle (local folder and moto S3) ----------------------------------------------------------------------

def test_write_publish_read_back(lake):
    users = [f"u{i}" for i in range(6)]
    manifest = write_complete(lake, D1, users)
    assert list_complete_runs(lake) == [D1] and latest_complete_run(lake) == D1
    assert run_status(lake, D1) == RunStatus.COMPLETE == "complete"
    assert manifest == read_manifest(lake, D1)
    assert (manifest["rows"], manifest["pairs"], len(manifest["files"])) == (24, 12, 2)
    assert manifest["model_version"] == "m1" and re.fullmatch(r"[0-9a-f]{64}", manifest["config_digest"])
    assert manifest["config_digest"] == config_digest({"generation": {"steps": 10}}) != config_digest({})

    table = read_run(lake)
    assert table.schema == DESIGNS_SCHEMA and table.num_rows == 24
    assert set(table.column("run_date").to_pylist()) == {D1}
    assert read_run(lake, D1, category="Shirt").num_rows == 12
    assert read_run(lake, D1, user_id=["u1", "u4"], category="Dress").num_rows == 4
    mine = designs_for_user(lake, "u3")
    assert [(c, r) for c, r in zip(mine.column("category").to_pylist(), mine.column("rank").to_pylist())] == \
        [("Dress", 1), ("Dress", 2), ("Shirt", 1), ("Shirt", 2)]
    assert decode_image(mine.column("image_png")[0].as_py()).shape[:2] == (4, 4)
    with pytest.raises(LakeError, match="unknown designs columns"):
        read_run(lake, D1, columns=["nope"])


def test_incomplete_run_is_never_listed_or_read(lake):
    write_complete(lake, D1, ["u0", "u1"])
    write_designs(fake_designs(D2, ["u0", "u1"]), lake, D2)  # D2 crashed before its manifest
    assert run_status(lake, D2) == RunStatus.PARTIAL
    assert list_complete_runs(lake) == [D1] and latest_complete_run(lake) == D1
    assert set(read_run(lake).column("run_date").to_pylist()) == {D1}
    with pytest.raises(LakeError, match="not complete"):
        read_run(lake, D2)
    con = duckdb_connect(lake)
    assert con.sql("SELECT DISTINCT run_date FROM designs").fetchall() == [(D1,)]
    assert all(f"run_date={D1}/" in f for f in complete_run_files(lake))
    assert run_status(lake, "2026-01-01") == RunStatus.ABSENT and list_complete_runs(lake + "/nowhere") == []


FOREIGN = {"run_date=2026-08-21": b"", "run_date=2026-08-22": b"<xml/>", "run_date=2026-08-23": b"[1, 2]",
           "run_date=2026-08-24": json.dumps({"run_date": "2026-08-24", "model_version": "m", "rows": 1, "pairs": 1,
                                              "files": "x.parquet", "created_at": "", "fashiongen_version": "",
                                              "config_digest": ""}).encode()}


def test_foreign_manifests_and_folders_are_skipped_and_reported(lake, caplog, capsys):
    from fashiongen import cli

    write_complete(lake, D1, ["u0", "u1"])
    for name, data in FOREIGN.items():  # e.g. Hadoop/Spark's empty _SUCCESS, or another tool's marker
        storage.write_bytes(storage.join(lake, "designs", name, "_SUCCESS"), data)
    storage.write_bytes(storage.join(lake, "designs", "backup-2026", "part-0.parquet"), b"x")
    storage.write_bytes(storage.join(lake, "designs", "run_date=2026-02-31", "_SUCCESS"), b"{}")
    with caplog.at_level(logging.WARNING, logger="fashiongen.lake.reader"):
        assert list_complete_runs(lake) == [D1] and latest_complete_run(lake) == D1
    assert all(name in caplog.text for name in FOREIGN)
    skipped = foreign_runs(lake)
    assert set(skipped) == {*FOREIGN, "backup-2026", "run_date=2026-02-31"}
    assert "empty" in skipped["run_date=2026-08-21"] and "not valid JSON" in skipped["run_date=2026-08-22"]
    assert "not a JSON object" in skipped["run_date=2026-08-23"] and "files" in skipped["run_date=2026-08-24"]
    assert "not a run_date=YYYY-MM-DD folder" in skipped["backup-2026"]
    assert read_run(lake).num_rows == 8 and len(complete_run_files(lake)) == 2
    assert duckdb_connect(lake).execute("SELECT count(*) FROM designs").fetchone()[0] == 8
    with pytest.raises(LakeError, match="run_date=2026-08-21/_SUCCESS is empty"):
        read_manifest(lake, "2026-08-21")

    assert cli.main(["lake", "runs", f"lake_uri={lake}"]) == 0
    out = capsys.readouterr().out
    assert f"| {D1} | 8 | 4 | m1 |" in out and all(f"skipped designs/{name}: " in out for name in skipped)


def test_manifest_is_written_last_and_only_after_checks(lake, monkeypatch):
    write_designs(fake_designs(D1, ["u0", "u1"]), lake, D1)
    storage.write_bytes(storage.join(LakePaths(lake).checkpoint(D1), "ckpt.parquet"), b"x")
    writes: list[str] = []
    real_write, real_delete = storage.write_bytes, storage.delete

    def spy_write(uri: str, data: bytes) -> None:
        writes.append(uri)
        real_write(uri, data)

    def spy_delete(uri: str) -> None:
        writes.append(f"delete {uri}")
        real_delete(uri)

    monkeypatch.setattr(storage, "write_bytes", spy_write)
    monkeypatch.setattr(storage, "delete", spy_delete)
    publish_run(lake, D1, model_version="m1")
    # the manifest is the only write; only the checkpoint cleanup follows it
    assert writes == [LakePaths(lake).manifest(D1), f"delete {LakePaths(lake).checkpoint(D1)}"]
    assert not storage.list_dir(LakePaths(lake).checkpoint(D1))
    with pytest.raises(LakeError, match="already published"):
        publish_run(lake, D1, model_version="m1")


def test_publish_refuses_bad_runs_and_writes_no_manifest(lake):
    with pytest.raises(LakeError, match="no Parquet files"):
        publish_run(lake, D1, model_version="m1")
    part = fake_designs(D1, ["u0"])
    write_designs(part, lake, D1)
    write_designs(part, lake, D1)  # the same pairs appended twice (a resume without checkpoint)
    report = dedupe_check(lake, D1)
    assert (report.rows, report.pairs, report.designs, report.duplicate_rows, report.files) == (8, 2, 4, 4, 2)
    with pytest.raises(LakeError, match="duplicate"):
        publish_run(lake, D1, model_version="m1")
    assert not storage.exists(LakePaths(lake).manifest(D1)) and list_complete_runs(lake) == []

    write_designs(fake_designs(D2, ["u0"], model_version="old"), lake, D2)
    write_designs(fake_designs(D2, ["u1"], model_version="new"), lake, D2)
    with pytest.raises(LakeError, match="model_version"):
        publish_run(lake, D2, model_version="new")
    assert run_status(lake, D2) == RunStatus.PARTIAL


def test_write_designs_checks_the_contract(tmp_path):
    lake = str(tmp_path)
    table = fake_designs(D1, ["u0"])
    with pytest.raises(LakeError, match="run_date"):
        write_designs(table, lake, D2)
    with pytest.raises(LakeError, match="missing \\['lift'\\]"):
        write_designs(table.drop_columns(["lift"]), lake, D1)
    with pytest.raises(LakeError, match="'score' has 4 nulls"):
        write_designs(table.set_column(6, "score", pa.nulls(4, pa.float32())), lake, D1)
    # compatible types (float64, large_binary, int64) are cast to the contract
    loose = table.set_column(6, "score", table.column("score").cast(pa.float64()))
    loose = loose.set_column(5, "rank", loose.column("rank").cast(pa.int64()))
    loose = loose.set_column(9, "image_png", loose.column("image_png").cast(pa.large_binary()))
    storage_path = write_designs(loose, lake, D1)
    assert storage.read_table(storage_path).schema == DESIGNS_SCHEMA
    # a file written off-contract by another writer is caught at publish
    storage.write_table(table.drop_columns(["realism"]), storage.join(LakePaths(lake).run(D2), "part-x.parquet"))
    with pytest.raises(LakeError, match="part-x.parquet"):
        publish_run(lake, D2, model_version="m1")


def test_prepare_run_force_noop_resume(lake):
    ckpt_file = storage.join(LakePaths(lake).checkpoint(D1), "checkpoint-0.parquet")
    image = LakePaths(lake).image(D1, "u0", "Dress", 1)

    plan = prepare_run(lake, D1)
    assert (plan.action, plan.previous_status) == ("start", RunStatus.ABSENT)
    assert (plan.run_uri, plan.checkpoint_uri, plan.images_uri) == \
        (LakePaths(lake).run(D1), LakePaths(lake).checkpoint(D1), LakePaths(lake).images_run(D1))

    first = write_designs(fake_designs(D1, ["u0"]), lake, D1)  # crash after one block, checkpoint present
    storage.write_bytes(ckpt_file, b"done pairs")
    storage.write_bytes(image, b"png")
    plan = prepare_run(lake, D1)
    assert (plan.action, plan.previous_status) == ("resume", RunStatus.PARTIAL)
    assert storage.exists(first) and storage.exists(ckpt_file)  # resume keeps what was written

    write_designs(fake_designs(D1, ["u1"]), lake, D1)
    publish_run(lake, D1, model_version="m1")
    storage.write_bytes(ckpt_file, b"left over")  # a crash between commit and checkpoint cleanup
    plan = prepare_run(lake, D1)
    assert (plan.action, plan.previous_status) == ("skip", RunStatus.COMPLETE)
    assert read_manifest(lake, D1)["rows"] == 8 and not storage.exists(ckpt_file)

    # force on a published run: it stays readable while the new one is written beside it, then swaps in
    abandoned = write_designs(fake_designs(D1, ["u9"]), lake, D1)  # a force attempt that crashed before its commit
    old_files = read_manifest(lake, D1)["files"]
    plan = prepare_run(lake, D1, force=True)
    assert (plan.action, plan.previous_status) == ("start", RunStatus.COMPLETE)
    assert sorted(plan.superseded) == sorted(old_files) and not storage.exists(abandoned)
    assert list_complete_runs(lake) == [D1] and read_run(lake, D1).num_rows == 8  # readers keep the old run
    replacement = write_designs(fake_designs(D1, ["u2"]), lake, D1)
    assert dedupe_check(lake, D1, exclude=plan.superseded).pairs == 2
    manifest = publish_run(lake, D1, model_version="m1", replacing=plan.superseded)
    assert manifest["files"] == [replacement.rsplit("/", 1)[1]] and not storage.exists(first)
    assert set(read_run(lake, D1).column("user_id").to_pylist()) == {"u2"}
    with pytest.raises(LakeError, match="already published"):
        publish_run(lake, D1, model_version="m1")  # a second commit needs force (replacing=...)

    # force on a partial run wipes it; rows without a checkpoint: nothing says which pairs are done, so the date
    # restarts from scratch
    storage.delete(LakePaths(lake).manifest(D1))
    assert prepare_run(lake, D1, force=True).action == "start" and run_status(lake, D1) == RunStatus.ABSENT
    assert not storage.exists(image)
    stray = write_designs(fake_designs(D1, ["u0"]), lake, D1)
    plan = prepare_run(lake, D1)
    assert (plan.action, plan.previous_status) == ("start", RunStatus.PARTIAL)
    assert not storage.exists(stray)


# --- DuckDB and Polars ---------------------------------------------------------------------------------------

def test_duckdb_reads_complete_runs_with_hive_partition(lake):
    write_complete(lake, D1, ["u0", "u1"])
    write_complete(lake, D2, ["u0", "u1", "u2", "u3"])
    con = duckdb_connect(lake)
    assert con.sql("SELECT run_date, count(*) FROM designs GROUP BY 1 ORDER BY 1").fetchall() == [(D1, 8), (D2, 16)]
    assert {row[0]: row[1] for row in con.sql("DESCRIBE designs").fetchall()}["run_date"] == "VARCHAR"
    glob = (lake if storage.is_s3(lake) else storage.local_path(lake)) + "/designs/*/*.parquet"
    assert con.sql(f"SELECT count(DISTINCT run_date), count(*) FROM read_parquet('{glob}', hive_partitioning=true)"
                   ).fetchall() == [(2, 24)]
    assert con.execute("SELECT sum(lift) FROM designs WHERE user_id = 'u2'").fetchone()[0] == pytest.approx(8.0)
    empty = duckdb_connect(lake + "/empty")
    assert empty.execute("SELECT count(*) FROM designs").fetchone()[0] == 0
    with pytest.raises(LakeError, match="identifier"):
        duckdb_connect(lake, view="x; DROP")


def test_polars_reads_complete_runs_with_hive_partition(lake):
    import polars as pl

    write_complete(lake, D1, ["u0", "u1"])
    write_designs(fake_designs(D2, ["u0"]), lake, D2)  # partial: not in complete_run_files
    options = polars_storage_options() if storage.is_s3(lake) else None
    frame = pl.scan_parquet(complete_run_files(lake), hive_partitioning=True, storage_options=options).collect()
    assert frame.height == 8 and frame["run_date"].unique().to_list() == [D1]
    counts = frame.group_by("category").len().sort("category")
    assert counts["len"].to_list() == [4, 4]


def test_polars_storage_options_come_from_env(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    assert polars_storage_options() == {}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert polars_storage_options() == {"aws_access_key_id": "AKIA", "aws_secret_access_key": "s3cr3t",
                                        "aws_region": "eu-west-1", "aws_endpoint_url": "http://127.0.0.1:9",
                                        "aws_allow_http": "true"}


def test_manifest_holds_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    lake = str(tmp_path)
    write_complete(lake, D1, ["u0"])
    text = storage.read_bytes(LakePaths(lake).manifest(D1)).decode()
    assert "very-secret-value-123" not in text and "AKIAEXAMPLEKEY" not in text
    assert set(json.loads(text)) == {"format", "run_date", "model_version", "rows", "pairs", "files", "created_at",
                                     "fashiongen_version", "config_digest", "attachments", "properties"}
