"""The designs lake: output contract, safe keys, the Iceberg table's run lifecycle, migration from the Hive layout,
readers (local folder and moto S3)."""
from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pytest

from fashiongen import storage
from fashiongen.data.images import decode_image
from fashiongen.config import IcebergConfig
from fashiongen.lake import (DESIGNS_SCHEMA, Lake, LakeError, LakePaths, RunStatus, complete_run_files, config_digest,
                             dedupe_check, design_key, designs_for_user, duckdb_connect,
                             latest_complete_run, list_complete_runs, make_pair_id, polars_storage_options,
                             prepare_run, publish_run, read_run, run_info, run_status, staged_files,
                             validate_run_date, write_designs)
from fashiongen.lake import migrate, publish
from fixtures import catalog_override, fake_designs, lake_at, write_complete

D1, D2 = "2026-08-19", "2026-08-20"
HOSTILE_IDS = ["../../etc", "a/b", "..", "/abs/path", "ünïcødé/東京", "x" * 5000, "a\\b", "nul\x00byte", "run_date=1999-01-01"]


@pytest.fixture
def lake(storage_root, tmp_path) -> Lake:
    return lake_at(storage_root, tmp_path)


# --- contract and keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "2026-8-1", "../2026-08-20", "", "2026-08-20/x"])
def test_bad_run_dates_are_rejected(bad):
    with pytest.raises(LakeError, match="run_date"):
        validate_run_date(bad)
    with pytest.raises(LakeError):
        LakePaths("lake").run_data(bad)


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
    allowed = re.compile(r"^(designs|images|data|metadata|_catalog|_work|iceberg\.db|run_date=\d{4}-\d{2}-\d{2}|[0-9a-f]{2}"
                         r"|[0-9a-f]{64}\.png|attempt-[0-9a-f]{12}|part-[0-9a-f]{32}\.parquet"
                         r"|\d{5}-[0-9a-f-]{36}\.metadata\.json|(snap-\d+-\d-)?[0-9a-f-]{36}(-m\d+)?\.avro)$")
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
    record = write_complete(lake, D1, users)
    assert list_complete_runs(lake) == [D1] and latest_complete_run(lake) == D1
    assert run_status(lake, D1) == RunStatus.COMPLETE == "complete"
    assert record == run_info(lake, D1)
    assert (record["rows"], record["pairs"], len(record["files"])) == (24, 12, 2)
    assert record["model_version"] == "m1" and re.fullmatch(r"[0-9a-f]{64}", record["config_digest"])
    assert record["config_digest"] == config_digest({"generation": {"steps": 10}}) != config_digest({})

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

    from fashiongen.lake.reader import best_designs_sample
    sample = best_designs_sample(lake, D1, ["pair_id", "rank", "image_png"], 5)  # the realism sample's reader
    assert sample.num_rows == 5 and set(sample.column("rank").to_pylist()) == {1}
    assert sample.schema.field("rank").type == DESIGNS_SCHEMA.field("rank").type
    assert best_designs_sample(lake, D1, ["pair_id"], 100).num_rows == 12  # one best design per pair, no more
    assert best_designs_sample(lake, D1, ["pair_id"], 0).num_rows == 0


def test_a_run_is_one_snapshot_whose_properties_carry_its_record(lake):
    write_complete(lake, D1, ["u0", "u1"])
    write_designs(fake_designs(D2, ["u0"], model_version="m2"), lake, D2)
    publish_run(lake, D2, model_version="m2", config={"x": 1}, properties={"design.mode": "optimise"})
    table = lake.table()
    snapshots = table.snapshots()
    assert len(snapshots) == 2  # one per run date: every file of a date lands in one atomic commit
    summary = snapshots[-1].summary.additional_properties
    assert summary["fashiongen.run_date"] == D2 and summary["fashiongen.model_version"] == "m2"
    assert (summary["added-data-files"], summary["added-records"]) == ("1", "4")
    record = run_info(lake, D2)
    assert (record["rows"], record["pairs"], record["properties"]) == (4, 2, {"design.mode": "optimise"})
    assert record["snapshot_id"] == snapshots[-1].snapshot_id and record["config_digest"] == config_digest({"x": 1})
    # time travel: the table as it was after the first run holds only D1
    before = table.scan(snapshot_id=snapshots[0].snapshot_id).to_arrow()
    assert set(before.column("run_date").to_pylist()) == {D1} and before.num_rows == 8

    # --force replaces exactly one date, in one more snapshot; the other date's files and record are untouched
    d2 = run_info(lake, D2)
    prepare_run(lake, D1, force=True)
    write_designs(fake_designs(D1, ["u7"]), lake, D1)
    publish_run(lake, D1, model_version="m1", replace=True)
    assert len(lake.table().snapshots()) == 3 and run_info(lake, D2) == d2
    assert set(read_run(lake, D1).column("user_id").to_pylist()) == {"u7"} and read_run(lake, D2).num_rows == 4


def test_incomplete_run_is_never_listed_or_read(lake):
    import polars as pl

    write_complete(lake, D1, ["u0", "u1"])
    write_designs(fake_designs(D2, ["u0", "u1"]), lake, D2)  # D2 crashed before its commit
    assert run_status(lake, D2) == RunStatus.PARTIAL
    assert list_complete_runs(lake) == [D1] and latest_complete_run(lake) == D1
    assert set(read_run(lake).column("run_date").to_pylist()) == {D1}
    with pytest.raises(LakeError, match="not published"):
        read_run(lake, D2)
    con = duckdb_connect(lake)
    assert con.sql("SELECT DISTINCT run_date FROM designs").fetchall() == [(D1,)]
    assert all(f"run_date={D1}/" in f for f in complete_run_files(lake))
    assert set(lake.table().scan().to_arrow().column("run_date").to_pylist()) == {D1}
    assert pl.scan_iceberg(lake.table()).select("run_date").unique().collect()["run_date"].to_list() == [D1]
    assert run_status(lake, "2026-01-01") == RunStatus.ABSENT
    elsewhere = Lake(lake.uri + "/elsewhere", lake.iceberg)
    if lake.iceberg.catalog_uri:  # a shared catalog: another lake's table is refused, never read as this one's
        with pytest.raises(LakeError, match="namespace of its own"):
            list_complete_runs(elsewhere)
    else:  # the embedded catalog lives in the lake
        assert list_complete_runs(elsewhere) == []
    assert list_complete_runs(Lake(lake.uri, IcebergConfig(lake.iceberg.catalog_uri, namespace="other"))) == []


def test_publish_commits_after_the_checks_and_then_drops_the_checkpoint(lake, monkeypatch):
    write_designs(fake_designs(D1, ["u0", "u1"]), lake, D1)
    storage.write_bytes(storage.join(lake.paths.checkpoint(D1), "ckpt.parquet"), b"x")
    calls: list[str] = []
    real_commit, real_delete = publish.commit_files, storage.delete

    def spy_commit(*args, **kwargs):
        calls.append("commit")
        return real_commit(*args, **kwargs)

    def spy_delete(uri: str) -> None:
        calls.append(f"delete {uri}")
        real_delete(uri)

    monkeypatch.setattr(publish, "commit_files", spy_commit)
    monkeypatch.setattr(storage, "delete", spy_delete)
    publish_run(lake, D1, model_version="m1")
    assert calls[0] == "commit" and calls[1] == f"delete {lake.paths.checkpoint(D1)}"
    assert not storage.list_dir(lake.paths.checkpoint(D1))
    with pytest.raises(LakeError, match="already published"):
        publish_run(lake, D1, model_version="m1")


def test_a_failed_commit_publishes_nothing_and_keeps_the_staged_files(lake, monkeypatch):
    from pyiceberg.exceptions import CommitFailedException

    write_designs(fake_designs(D1, ["u0", "u1"]), lake, D1)
    staged = staged_files(lake, D1)
    lake.create_table()
    monkeypatch.setattr(publish, "COMMIT_TRIES", 2)
    monkeypatch.setattr("pyiceberg.table.Transaction.commit_transaction",
                        lambda self: (_ for _ in ()).throw(CommitFailedException("another writer won")))
    with pytest.raises(LakeError, match="could not commit run .* after 2 tries"):
        publish_run(lake, D1, model_version="m1")
    monkeypatch.undo()
    assert list_complete_runs(lake) == [] and staged_files(lake, D1) == staged
    assert publish_run(lake, D1, model_version="m1")["rows"] == 8  # the rerun commits them


def test_publish_refuses_bad_runs_and_commits_nothing(lake):
    with pytest.raises(LakeError, match="no staged Parquet files"):
        publish_run(lake, D1, model_version="m1")
    part = fake_designs(D1, ["u0"])
    write_designs(part, lake, D1)
    write_designs(part, lake, D1)  # the same pairs appended twice (a resume without checkpoint)
    report = dedupe_check(lake, D1)
    assert (report.rows, report.pairs, report.designs, report.duplicate_rows, report.files) == (8, 2, 4, 4, 2)
    with pytest.raises(LakeError, match="duplicate"):
        publish_run(lake, D1, model_version="m1")
    assert list_complete_runs(lake) == [] and (lake.table() is None or lake.table().current_snapshot() is None)

    write_designs(fake_designs(D2, ["u0"], model_version="old"), lake, D2)
    write_designs(fake_designs(D2, ["u1"], model_version="new"), lake, D2)
    with pytest.raises(LakeError, match="model_version"):
        publish_run(lake, D2, model_version="new")
    assert run_status(lake, D2) == RunStatus.PARTIAL

    D3 = "2026-01-03"
    foreign = fake_designs(D3, ["u0"])
    write_designs(foreign.set_column(foreign.schema.get_field_index("pair_id"), "pair_id",
                                     pa.array(["pair-1"] * foreign.num_rows)), lake, D3)
    with pytest.raises(LakeError, match="not 32-hex make_pair_id ids"):
        publish_run(lake, D3, model_version="m1")


def test_a_write_cut_off_mid_file_is_skipped_counted_then_refused_by_publish(lake):
    """Ray Data's two-phase checkpoint: a pending checkpoint names the prefix of a data file not yet confirmed (torn
    by a SIGKILL, say); counts skip it and say so, publish refuses until the resume deletes it."""
    whole = write_designs(fake_designs(D1, ["u0"]), lake, D1)
    torn = storage.join(whole.rsplit("/", 1)[0], "abc123_000001-0.parquet")
    storage.write_bytes(torn, storage.read_bytes(whole)[:100])  # a file cut off mid-write
    storage.write_bytes(storage.join(lake.paths.checkpoint(D1), "abc123_000001" + publish.PENDING_SUFFIX), b"ids")
    assert staged_files(lake, D1) == [whole] and publish.uncommitted_files(lake, D1) == [torn]
    report = dedupe_check(lake, D1)
    assert (report.rows, report.pairs, report.files, report.uncommitted) == (4, 2, 1, 1)
    with pytest.raises(LakeError, match=f"1 data files of writes cut off .* rerun {D1} to resume"):
        publish_run(lake, D1, model_version="m1")
    assert list_complete_runs(lake) == []

    storage.delete(lake.paths.checkpoint(D1))  # a torn file no checkpoint knows of: one line naming it
    with pytest.raises(LakeError, match=f"staged file .*abc123_000001-0.parquet of run {D1} is not readable Parquet"):
        dedupe_check(lake, D1)
    with pytest.raises(LakeError, match="abc123_000001-0.parquet .* not readable Parquet.*force=true"):
        publish_run(lake, D1, model_version="m1")


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
    prepare_run(lake, D2)
    storage.write_table(table.drop_columns(["realism"]),
                        storage.join(LakePaths(lake).attempt(D2, publish.current_attempt(lake, D2)), "part-x.parquet"))
    with pytest.raises(LakeError, match="part-x.parquet"):
        publish_run(lake, D2, model_version="m1")


def test_prepare_run_force_noop_resume(lake):
    paths = lake.paths
    ckpt_file = storage.join(paths.checkpoint(D1), "checkpoint-0.parquet")
    image = paths.image(D1, "u0", "Dress", 1)

    plan = prepare_run(lake, D1)
    assert (plan.action, plan.previous_status) == ("start", RunStatus.ABSENT)
    assert (plan.run_uri, plan.checkpoint_uri, plan.images_uri) == \
        (paths.attempt(D1, plan.attempt), paths.checkpoint(D1), paths.images_run(D1))

    first = write_designs(fake_designs(D1, ["u0"]), lake, D1)  # crash after one block, checkpoint present
    assert first.startswith(plan.run_uri + "/")
    storage.write_bytes(ckpt_file, b"done pairs")
    storage.write_bytes(image, b"png")
    resumed = prepare_run(lake, D1)
    assert (resumed.action, resumed.previous_status, resumed.run_uri) == ("resume", RunStatus.PARTIAL, plan.run_uri)
    assert storage.exists(first) and storage.exists(ckpt_file)  # resume keeps what was written

    write_designs(fake_designs(D1, ["u1"]), lake, D1)
    publish_run(lake, D1, model_version="m1")
    storage.write_bytes(ckpt_file, b"left over")  # a crash between commit and checkpoint cleanup
    plan = prepare_run(lake, D1)
    assert (plan.action, plan.previous_status) == ("skip", RunStatus.COMPLETE)
    assert run_info(lake, D1)["rows"] == 8 and not storage.exists(ckpt_file)

    # force on a published run: a new attempt beside it; readers keep the old run until the commit swaps it in
    crashed = prepare_run(lake, D1, force=True)
    abandoned = write_designs(fake_designs(D1, ["u9"]), lake, D1)  # that force attempt crashed before its commit
    old = run_info(lake, D1)
    plan = prepare_run(lake, D1, force=True)
    assert (plan.action, plan.previous_status) == ("start", RunStatus.COMPLETE) and plan.attempt != crashed.attempt
    assert not storage.exists(abandoned) and storage.exists(first)  # the committed attempt is never deleted
    assert list_complete_runs(lake) == [D1] and read_run(lake, D1).num_rows == 8
    replacement = write_designs(fake_designs(D1, ["u2"]), lake, D1)
    assert dedupe_check(lake, D1).pairs == 2
    with pytest.raises(LakeError, match="already published"):
        publish_run(lake, D1, model_version="m1")  # replacing needs force (replace=True)
    record = publish_run(lake, D1, model_version="m1", replace=True)
    assert record["files"] == [storage.local_path(replacement) or replacement]
    assert set(read_run(lake, D1).column("user_id").to_pylist()) == {"u2"}
    history = lake.table().scan(snapshot_id=old["snapshot_id"]).to_arrow()  # time travel still reads the old run
    assert set(history.column("user_id").to_pylist()) == {"u0", "u1"}
    assert lake.table().snapshots()[-1].summary["deleted-data-files"] == "2"  # one snapshot: out with the old

    # a partial date: rows without a checkpoint say nothing of which pairs are done, so it restarts from scratch
    stray = write_designs(fake_designs(D2, ["u0"]), lake, D2)
    storage.write_bytes(paths.image(D2, "u0", "Dress", 1), b"png")
    plan = prepare_run(lake, D2)
    assert (plan.action, plan.previous_status) == ("start", RunStatus.PARTIAL)
    assert not storage.exists(stray) and not storage.list_files(paths.images_run(D2))
    assert run_status(lake, D2) == RunStatus.ABSENT


# --- migration from the Hive layout -------------------------------------------------------------------------

def _legacy_run(lake: Lake, run_date: str, users: list[str], attachment: bool = False) -> dict:
    """A run as fashiongen wrote it before the Iceberg table: Parquet files and a _SUCCESS JSON manifest."""
    base = lake.paths.legacy_run(run_date)
    old_schema = pa.schema([f for f in DESIGNS_SCHEMA if f.name not in ("mode", "source_item_id")])  # older columns
    files = []
    for k, part in enumerate((users[: len(users) // 2], users[len(users) // 2:])):
        name = f"part-{k}.parquet"
        storage.write_table(fake_designs(run_date, part, model_version="m0").select(old_schema.names).cast(old_schema),
                            storage.join(base, name))
        files.append(name)
    attachments = {}
    if attachment:
        digests = lake.paths.run_state(run_date, "user_digests-0.parquet")
        storage.write_table(pa.table({"user_id": users}), digests)
        data = storage.read_bytes(digests)
        import hashlib
        attachments = {"user_digests": {"path": digests[len(lake.uri) + 1:], "bytes": len(data),
                                        "sha256": hashlib.sha256(data).hexdigest()}}
    manifest = {"format": "fashiongen.designs/1", "run_date": run_date, "model_version": "m0", "rows": 4 * len(users),
                "pairs": 2 * len(users), "files": files, "created_at": "2026-08-01T00:00:00+00:00",
                "fashiongen_version": "0.1.0", "config_digest": "c" * 64, "attachments": attachments,
                "properties": {"design.mode": "optimise"}}
    storage.write_bytes(lake.paths.legacy_manifest(run_date), json.dumps(manifest).encode())
    return manifest


FOREIGN = {"run_date=2026-08-21": b"", "run_date=2026-08-22": b"<xml/>", "run_date=2026-08-23": b"[1, 2]",
           "run_date=2026-08-24": json.dumps({"run_date": "2026-08-24", "model_version": "m", "rows": 1, "pairs": 1,
                                              "files": "x.parquet", "created_at": "", "fashiongen_version": "",
                                              "config_digest": ""}).encode()}


def test_migrate_imports_a_hive_layout_lake_once(lake, capsys):
    from fashiongen import cli
    from fashiongen.lake.reader import read_attachment

    _legacy_run(lake, D1, ["u0", "u1"], attachment=True)
    _legacy_run(lake, D2, ["u0", "u1", "u2", "u3"])
    for name, data in FOREIGN.items():  # e.g. Hadoop/Spark's empty _SUCCESS, or another tool's marker
        storage.write_bytes(storage.join(lake.paths.designs(), name, "_SUCCESS"), data)
    storage.write_bytes(storage.join(lake.paths.designs(), "backup-2026", "part-0.parquet"), b"x")
    storage.write_table(fake_designs("2026-08-25", ["u0"]),  # crashed before its manifest
                        storage.join(lake.paths.designs(), "run_date=2026-08-25", "part-0.parquet"))
    args = catalog_override(lake)
    assert list_complete_runs(lake) == []
    assert cli.main(["lake", "runs", *args]) == 0
    assert "2 run(s) in the Hive layout are not in the table" in capsys.readouterr().out

    report = migrate.migrate(lake)
    assert report.migrated == [D1, D2] and report.already == []
    skipped = report.skipped
    assert "empty" in skipped["run_date=2026-08-21"] and "not valid JSON" in skipped["run_date=2026-08-22"]
    assert "not a JSON object" in skipped["run_date=2026-08-23"] and "files" in skipped["run_date=2026-08-24"]
    assert "no _SUCCESS" in report.skipped["run_date=2026-08-25"] and "not a run_date" in report.skipped["backup-2026"]
    assert list_complete_runs(lake) == [D1, D2] and len(lake.table().snapshots()) == 2
    record = run_info(lake, D1)
    assert (record["rows"], record["pairs"], record["model_version"], record["created_at"]) == \
        (8, 4, "m0", "2026-08-01T00:00:00+00:00")
    assert record["properties"] == {"design.mode": "optimise"} and len(record["files"]) == 2
    assert read_attachment(lake, D1, "user_digests").column("user_id").to_pylist() == ["u0", "u1"]
    run = read_run(lake, D2)
    assert run.num_rows == 16 and run.schema == DESIGNS_SCHEMA and run.column("mode").null_count == 16

    assert migrate.migrate(lake).migrated == [] and len(lake.table().snapshots()) == 2  # idempotent
    assert cli.main(["lake", "migrate", *args]) == 0
    assert "migrated 0 run(s)" in capsys.readouterr().out
    write_complete(lake, "2026-08-26", ["u5", "u6"])  # new runs land beside the migrated ones
    assert cli.main(["lake", "runs", *args]) == 0
    out = capsys.readouterr().out
    assert f"| {D1} | 8 | 4 | m0 |" in out and "| 2026-08-26 | 8 | 4 | m1 |" in out and "Hive layout" not in out


def test_a_foreign_table_in_the_catalog_is_refused_clearly(lake):
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField, StringType

    catalog = lake.catalog()
    catalog.create_namespace_if_not_exists("fashiongen")
    catalog.create_table(lake.identifier, schema=Schema(NestedField(1, "id", StringType(), required=False)),
                         location=storage.join(lake.uri, "someone-else") if storage.is_s3(lake.uri)
                         else "file://" + storage.local_path(storage.join(lake.uri, "someone-else")))
    with pytest.raises(LakeError, match="fashiongen.designs is not a fashiongen designs table"):
        list_complete_runs(lake)
    write_designs(fake_designs(D1, ["u0"]), lake, D1)
    with pytest.raises(LakeError, match="iceberg.namespace"):
        publish_run(lake, D1, model_version="m1")


def test_an_s3_lake_without_a_catalog_says_how_to_name_one(monkeypatch, tmp_path):
    for name in [k for k in os.environ if k.startswith("PYICEBERG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", "/nonexistent")
    with pytest.raises(LakeError, match="iceberg.catalog_uri"):
        list_complete_runs("s3://bucket/lake")
    with pytest.raises(LakeError, match="cannot open the Iceberg catalog .*no-such-folder"):
        list_complete_runs(Lake(str(tmp_path), IcebergConfig(f"sqlite:///{tmp_path}/no-such-folder/c.db")))


# --- DuckDB, Polars, pyiceberg --------------------------------------------------------------------------------

def test_duckdb_reads_published_runs(lake, tmp_path):
    write_complete(lake, D1, ["u0", "u1"])
    write_complete(lake, D2, ["u0", "u1", "u2", "u3"])
    write_designs(fake_designs("2026-08-21", ["u0"]), lake, "2026-08-21")  # staged, never read
    con = duckdb_connect(lake)
    assert con.sql("SELECT run_date, count(*) FROM designs GROUP BY 1 ORDER BY 1").fetchall() == [(D1, 8), (D2, 16)]
    assert {row[0]: row[1] for row in con.sql("DESCRIBE designs").fetchall()}["run_date"] == "VARCHAR"
    assert con.execute("SELECT sum(lift) FROM designs WHERE user_id = 'u2'").fetchone()[0] == pytest.approx(8.0)
    (tmp_path / "other").mkdir()
    empty = duckdb_connect(lake_at(lake.uri + "/empty", tmp_path / "other"))
    assert empty.execute("SELECT count(*) FROM designs").fetchone()[0] == 0
    with pytest.raises(LakeError, match="identifier"):
        duckdb_connect(lake, view="x; DROP")


def test_polars_reads_the_table_and_its_files(lake):
    import polars as pl

    write_complete(lake, D1, ["u0", "u1"])
    write_designs(fake_designs(D2, ["u0"]), lake, D2)  # partial: not in the table
    frame = pl.scan_iceberg(lake.table()).collect()
    assert frame.height == 8 and frame["run_date"].unique().to_list() == [D1]
    options = polars_storage_options() if storage.is_s3(lake.uri) else None
    files = pl.scan_parquet(complete_run_files(lake), hive_partitioning=False, storage_options=options).collect()
    assert files.height == 8 and files.group_by("category").len().sort("category")["len"].to_list() == [4, 4]


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


def test_the_table_and_its_catalog_hold_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    lake = str(tmp_path)
    write_complete(lake, D1, ["u0"])
    for root, _, files in os.walk(tmp_path):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            assert b"very-secret-value-123" not in data and b"AKIAEXAMPLEKEY" not in data, name
    assert set(run_info(lake, D1)) == {"run_date", "model_version", "rows", "pairs", "created_at", "attempt",
                                       "fashiongen_version", "config_digest", "attachments", "properties",
                                       "snapshot_id", "files"}
