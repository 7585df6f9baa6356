"""The personalised-catalogue job end to end: real Ray Data, real moto S3, real (tiny) DVBPR and LSGAN."""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from fashiongen import storage
from fashiongen.config import load_config
from fashiongen.lake import layout, publish, reader
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.table import Lake
from fashiongen.models.contract import CheckpointError
from fixtures import catalog_override, copy_classifiers, fmnist_catalogue_with_models, lake_at, needs_fmnist

pytestmark = needs_fmnist
NUM_USERS, TOP_K = 8, 2


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A simulated Fashion-MNIST catalogue (local) and untrained-but-real DVBPR and LSGAN checkpoints."""
    base = tmp_path_factory.mktemp("gen")
    cfg = load_config(None, [f"data.catalogue_uri={base}/catalogue", "data.max_items=300",
                             f"simulation.num_users={NUM_USERS}", "recommender.k=8"])
    rec_uri, gan_uri = str(base / "models" / "dvbpr.pt"), str(base / "models" / "generator.pt")
    catalogue = fmnist_catalogue_with_models(cfg, rec_uri, gan_uri, classifiers_lake=str(base / "classifiers"))
    return {"catalogue_uri": cfg.data.catalogue_uri, "rec_uri": rec_uri, "gan_uri": gan_uri,
            "classifiers_lake": str(base / "classifiers"),
            "categories": catalogue.categories, "user_ids": list(catalogue.user_ids)}


def job_config(models, lake: Lake | str, *extra: str):
    """The job's config on `lake`, which gets the catalogue's category classifiers (`train-classifiers`) if it has none."""
    copy_classifiers(models["classifiers_lake"], lake.uri if isinstance(lake, Lake) else lake)
    return load_config(None, [
        *catalog_override(lake if isinstance(lake, Lake) else Lake(lake)),
        f"data.catalogue_uri={models['catalogue_uri']}", "run_date=2026-11-26",
        f"generation.recommender_uri={models['rec_uri']}", f"generation.generator_uri={models['gan_uri']}",
        "design.restarts=3", "design.steps=2", f"design.top_k={TOP_K}", "design.batch_pairs=8",
        "generation.rows_per_file=40", "generation.pairs_per_block=16", *extra])


@pytest.mark.slow
def test_end_to_end_on_s3_read_by_duckdb_and_polars_then_rerun_is_a_no_op(ray_local, s3_server, models, tmp_path):
    import duckdb
    import polars as pl

    from fashiongen.generation.job import run_generation

    lake = lake_at(f"s3://lake/gen-{uuid.uuid4().hex[:8]}", tmp_path)
    summary = run_generation(job_config(models, lake, "generation.write_image_objects=true"))
    pairs = NUM_USERS * len(models["categories"])
    assert summary.action == "start" and summary.pairs_total == pairs
    assert summary.pairs_done == pairs and summary.pairs_failed == 0
    assert reader.list_complete_runs(lake) == ["2026-11-26"]
    assert summary.oracle_lift, "a simulated catalogue must be judged by the oracle too"

    table = reader.read_run(lake, "2026-11-26")
    assert table.schema.equals(layout.DESIGNS_SCHEMA, check_metadata=False)
    assert table.num_rows == pairs * TOP_K
    assert sorted(set(table.column("rank").to_pylist())) == list(range(1, TOP_K + 1))
    row = table.slice(0, 1).to_pylist()[0]
    assert row["image_png"].startswith(b"\x89PNG") and len(row["latent"]) == 8
    assert row["image_uri"].startswith(f"{lake.uri}/images/run_date=2026-11-26/")
    assert row["user_id"] not in row["image_uri"]  # ids never become keys
    assert storage.read_bytes(row["image_uri"]) == row["image_png"]
    assert len(row["dataset_top_item_ids"]) == TOP_K and row["oracle_score"] is not None

    con = reader.duckdb_connect(lake)
    [(n, users)] = con.execute("SELECT count(*), count(DISTINCT user_id) FROM designs WHERE run_date = '2026-11-26'").fetchall()
    assert (n, users) == (pairs * TOP_K, NUM_USERS)
    files = reader.complete_run_files(lake)
    frame = pl.read_parquet(files, storage_options=reader.polars_storage_options())
    assert frame.height == pairs * TOP_K and frame["pair_id"].n_unique() == pairs

    assert pl.scan_iceberg(lake.table()).select(pl.len()).collect().item() == pairs * TOP_K
    record = reader.run_info(lake, "2026-11-26")
    assert len(lake.table().snapshots()) == 1  # the whole run is one commit
    again = run_generation(job_config(models, lake))
    assert again.action == "skip" and again.pairs_this_attempt == 0
    assert reader.run_info(lake, "2026-11-26") == record and len(lake.table().snapshots()) == 1
    assert reader.complete_run_files(lake, ["2026-11-26"]) == record["files"] == files


@pytest.mark.slow
def test_crash_halfway_then_rerun_gives_each_pair_exactly_once(ray_local, tmp_path, models, monkeypatch):
    from fashiongen.generation.job import run_generation

    lake = str(tmp_path / "lake")
    pairs = NUM_USERS * len(models["categories"])
    # The actor dies on its 4th block of 5: the first three have long been written (writes are quick next to design).
    monkeypatch.setenv("FASHIONGEN_FAULTS", f"design.pairs={pairs * 3 // 4}")
    with pytest.raises(Exception, match="injected failure"):
        run_generation(job_config(models, lake))
    monkeypatch.delenv("FASHIONGEN_FAULTS")
    assert reader.list_complete_runs(lake) == []  # a reader never sees the partial run
    written = publish.dedupe_check(lake, "2026-11-26").pairs
    assert 0 < written < pairs

    summary = run_generation(job_config(models, lake))
    assert summary.action == "resume"
    assert summary.pairs_this_attempt == pairs - written  # only the missing pairs were designed
    run = reader.read_run(lake, "2026-11-26", columns=["pair_id", "rank"])  # the published run
    designs = run.group_by(["pair_id", "rank"]).aggregate([]).num_rows
    assert (len(set(run.column("pair_id").to_pylist())), run.num_rows, run.num_rows - designs) == \
        (pairs, pairs * TOP_K, 0)


@pytest.mark.slow
def test_bad_pairs_are_reported_and_the_rest_publishes(ray_local, tmp_path, models):
    from fashiongen.generation.job import run_generation

    lake = str(tmp_path / "lake")
    good = [(u, c) for u in models["user_ids"][:2] for c in models["categories"][:2]]
    bad = [("no-such-user", models["categories"][0]), (models["user_ids"][0], "Hats")]
    pairs_uri = str(tmp_path / "pairs.parquet")
    storage.write_table(pa.table({"user_id": [u for u, _ in good + bad], "category": [c for _, c in good + bad]}),
                        pairs_uri)
    summary = run_generation(job_config(models, lake, f"generation.pairs_uri={pairs_uri}"))
    assert summary.pairs_done == len(good) and summary.pairs_failed == 2
    assert summary.failure_reasons == {"unknown user_id": 1, "unknown category 'Hats'": 1}
    assert "failed (1): unknown user_id" in summary.to_markdown()
    assert reader.list_complete_runs(lake) == ["2026-11-26"]
    got = set(zip(*[reader.read_run(lake).column(c).to_pylist() for c in ("user_id", "category")]))
    assert got == set(good)


@pytest.mark.slow
def test_incremental_designs_only_users_whose_vector_changed(ray_local, tmp_path, models):
    from fashiongen.generation.job import run_generation

    lake = str(tmp_path / "lake")
    run_generation(job_config(models, lake, "generation.users_uri=" + _users_file(tmp_path, models["user_ids"][:3])))
    changed_uri = str(tmp_path / "dvbpr-changed.pt")
    save_with_changed_taste(models, 1, changed_uri)
    summary = run_generation(job_config(models, lake, "run_date=2026-11-27", "generation.incremental=true",
                                        f"generation.recommender_uri={changed_uri}"))
    users = set(reader.read_run(lake, "2026-11-27").column("user_id").to_pylist())
    assert users == set(models["user_ids"]) - set(models["user_ids"][:3]) | {models["user_ids"][1]}
    assert summary.pairs_done == len(users) * len(models["categories"])


def save_with_changed_taste(models, user: int, uri: str, base: str = "") -> None:
    """Save the recommender at `base` (default: the fixture's) with `user` having picked three more items than the
    catalogue says (the nightly way a taste changes): their vector is recomputed, nobody else's."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.bpr import TrainSet
    from fashiongen.models.contract import load_recommender

    rec = load_recommender(base or models["rec_uri"])
    catalogue = load_catalogue(models["catalogue_uri"], with_images=False)
    new = np.setdiff1d(np.arange(catalogue.num_items), catalogue.train_items[catalogue.train_users == user])[:3]
    train = TrainSet.from_pairs(np.r_[catalogue.train_users, [user] * 3], np.r_[catalogue.train_items, new],
                                catalogue.num_users, catalogue.num_items)
    before = rec.user_vectors().clone()
    assert rec.refit_users(np.array([user]), train)
    after = rec.user_vectors()
    assert not torch.equal(after[user], before[user])
    assert torch.equal(torch.cat([after[:user], after[user + 1:]]), torch.cat([before[:user], before[user + 1:]]))
    rec.save(uri)


def _users_file(tmp_path, user_ids) -> str:
    uri = str(tmp_path / f"users-{uuid.uuid4().hex[:6]}.csv")
    Path(uri).write_text("user_id\n" + "\n".join(user_ids) + "\n")
    return uri


def test_max_users_is_a_stable_sample_of_the_selection(tmp_path):
    from fashiongen.generation.job import select_users, user_digests

    ids = np.array([f"user-{k:03d}" for k in range(50)])
    digests = user_digests(np.zeros((50, 4), np.float32), ids)
    cfg = load_config(None, [f"lake_uri={tmp_path}", "generation.max_users=7"])
    users, why = select_users(cfg, "2026-11-26", digests)
    again, _ = select_users(cfg, "2026-11-26", digests.take(np.arange(49, -1, -1)))  # row order does not matter
    assert users.num_rows == 7 and "max_users" in why
    assert sorted(users.column("user_id").to_pylist()) == sorted(again.column("user_id").to_pylist())
    everyone, _ = select_users(load_config(None, [f"lake_uri={tmp_path}"]), "2026-11-26", digests)
    assert everyone.num_rows == 50


def test_digests_are_committed_with_the_run_so_a_crash_never_skews_the_next_incremental_night(
        ray_local, tmp_path, models, monkeypatch):
    """A crash between the rows and the digests, or between the digests and the commit, leaves the date unpublished;
    the rerun publishes it with its digests, and the next incremental night designs exactly the users whose vector
    changed since the last complete run."""
    from fashiongen.generation.job import run_generation
    from fashiongen.generation.plan import DIGESTS_ATTACHMENT

    lake = str(tmp_path / "lake")
    run_generation(job_config(models, lake, "run_date=2026-11-25"))  # everyone, with the initial vectors
    day2 = str(tmp_path / "dvbpr-day2.pt")
    save_with_changed_taste(models, 2, day2)
    for point in ("generate.before_digests", "generate.before_publish"):
        monkeypatch.setenv("FASHIONGEN_FAULTS", f"{point}=1")
        with pytest.raises(RuntimeError, match=point):
            run_generation(job_config(models, lake, "run_date=2026-11-26", "generation.incremental=true",
                                      f"generation.recommender_uri={day2}"))
        assert reader.list_complete_runs(lake) == ["2026-11-25"]  # not published without its digests
    monkeypatch.delenv("FASHIONGEN_FAULTS")
    run_generation(job_config(models, lake, "run_date=2026-11-26", "generation.incremental=true",
                              f"generation.recommender_uri={day2}"))
    assert set(reader.read_run(lake, "2026-11-26").column("user_id").to_pylist()) == {models["user_ids"][2]}
    manifest = reader.run_info(lake, "2026-11-26")
    assert manifest["attachments"][DIGESTS_ATTACHMENT]["path"].startswith("_state/designs/run_date=2026-11-26/user_digests-")
    assert len(storage.list_files(LakePaths(lake).run_state("2026-11-26"))) == 1  # the crashed attempts left none

    day3 = str(tmp_path / "dvbpr-day3.pt")
    save_with_changed_taste(models, 5, day3, base=day2)  # day 3: one more user changes; user 2 keeps its day-2 vector
    run_generation(job_config(models, lake, "run_date=2026-11-27", "generation.incremental=true",
                              f"generation.recommender_uri={day3}"))
    assert set(reader.read_run(lake, "2026-11-27").column("user_id").to_pylist()) == {models["user_ids"][5]}

    storage.write_bytes(storage.join(lake, manifest["attachments"][DIGESTS_ATTACHMENT]["path"]), b"tampered")
    with pytest.raises(layout.LakeError, match="does not match its snapshot's record"):
        reader.read_attachment(lake, "2026-11-26", DIGESTS_ATTACHMENT)


def write_judge(models, seed: int = 1) -> str:
    """A second (untrained, real) DVBPR of the same catalogue with another seed: a held-out scorer."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.dvbpr import DVBPR

    catalogue = load_catalogue(models["catalogue_uri"])
    judge = DVBPR(k=8, arch="small", seed=seed)
    judge.build_for(catalogue)
    judge.index_catalogue(catalogue.images)
    uri = str(Path(models["rec_uri"]).with_name(f"judge-{seed}.pt"))
    judge.save(uri)
    return uri


@pytest.mark.slow
def test_three_judges_realism_and_redesign_from_items_in_the_job(ray_local, tmp_path, models):
    from fashiongen.generation.job import run_generation
    from fashiongen.generation.summary import JUDGES, TRUE_TASTE
    from fashiongen.models.contract import load_recommender

    judge_uri, member_uri = write_judge(models), write_judge(models, seed=2)
    cfg = job_config(models, str(tmp_path / "lake"), f"generation.judge_uri={judge_uri}", "design.mode=from_items",
                     f"generation.ensemble_uris={member_uri}",
                     "design.invert_steps=5", "design.invert_restarts=1", "generation.realism_sample=40")
    summary = run_generation(cfg)
    assert set(summary.verdicts) == set(JUDGES)
    for verdict in summary.verdicts.values():
        assert verdict["pairs"] == summary.pairs_done and 0 <= verdict["win_share"] <= 1
        assert 0 < verdict["p_sign"] <= 1 and 0 < verdict["p_permutation"] <= 1
        assert verdict["win_low"] <= verdict["win_share"] <= verdict["win_high"]  # resampling the run's shoppers
    assert summary.realism["designs"]["n_fake"] == 40 and summary.realism["plain"]["n_fake"] == 40
    assert np.isfinite(summary.realism["fid_ratio"])
    text = summary.to_markdown()
    assert "held-out scorer" in text and "realism" in text
    bound, truth = summary.bound, summary.verdicts[TRUE_TASTE]  # the design bound on the same pairs
    assert bound["pairs"] == truth["pairs"] and bound["run vs best retrieved"] == pytest.approx(truth["win_share"])
    assert 0 <= bound["bound vs truly best"] <= bound["bound vs best retrieved"] <= 1
    assert bound["share of the bound"] == pytest.approx(truth["win_share"] / bound["bound vs best retrieved"])
    assert bound["share of the bound, low"] <= bound["share of the bound"] <= bound["share of the bound, high"]
    assert bound["shoppers"] == len(set(reader.read_run(cfg.lake_uri, cfg.run_date, columns=["user_id"])
                                        .column("user_id").to_pylist()))
    assert f"design bound on these {summary.pairs_done} pairs" in text
    table = reader.read_run(cfg.lake_uri, cfg.run_date)
    assert table.column("judge_score").null_count == 0 and table.column("dataset_judge_scores").null_count == 0
    assert set(table.column("mode").to_pylist()) == {"from_items"}
    best = {r["pair_id"]: r for r in table.filter(pa.compute.equal(table.column("rank"), 1)).to_pylist()}
    assert all(r["source_item_id"] in r["dataset_top_item_ids"] for r in table.to_pylist() if r["source_item_id"])
    assert best and table.column("source_item_id").null_count < table.num_rows
    manifest = reader.run_info(cfg.lake_uri, cfg.run_date)
    assert manifest["properties"]["design.mode"] == "from_items" and manifest["properties"]["judge_version"]
    assert manifest["properties"]["ensemble_versions"] == load_recommender(member_uri).model_version


def test_a_named_judge_that_is_missing_or_the_climbed_model_is_a_one_line_error(tmp_path, models):
    from fashiongen.generation.job import run_generation
    from fashiongen.generation.plan import GenerationError

    lake = str(tmp_path / "lake")
    for judge, words in ((str(tmp_path / "nowhere.pt"), "has no checkpoint"), (models["rec_uri"], "trained apart")):
        with pytest.raises(GenerationError, match=words) as info:
            run_generation(job_config(models, lake, f"generation.judge_uri={judge}"))
        assert "generation.judge_uri" in str(info.value) and "\n" not in str(info.value)
    judge = write_judge(models)
    for member, words in ((str(tmp_path / "nowhere.pt"), "has no checkpoint"), (models["rec_uri"], "recommender the "
                          "designs climb"), (judge, "held-out judge, which must never be climbed")):
        with pytest.raises(GenerationError, match=words) as info:
            run_generation(job_config(models, lake, f"generation.judge_uri={judge}",
                                      f"generation.ensemble_uris={member}"))
        assert "generation.ensemble_uris" in str(info.value) and "\n" not in str(info.value)
    assert [p.name for p in Path(lake).iterdir()] == ["models"]  # checked before the lake is touched (its classifiers)


def test_a_missing_category_classifier_is_a_one_line_error_and_the_job_trains_none(tmp_path, models):
    from fashiongen.generation.job import run_generation

    lake = str(tmp_path / "lake")
    cfg = load_config(None, [f"lake_uri={lake}", f"data.catalogue_uri={models['catalogue_uri']}", "run_date=2026-11-26",
                             f"generation.recommender_uri={models['rec_uri']}",
                             f"generation.generator_uri={models['gan_uri']}"])
    with pytest.raises(CheckpointError, match="no guard category classifier at .*fashiongen train-classifiers") as info:
        run_generation(cfg)
    assert "\n" not in str(info.value) and not Path(lake).exists()  # checked before the lake is touched


@pytest.mark.slow
def test_amortised_modes_design_with_the_trained_designer_and_record_it(ray_local, tmp_path, models, capsys):
    from fashiongen.cli import main
    from fashiongen.generation.job import run_generation
    from fashiongen.models.designer import load_designer
    from fashiongen.models.gan import ConditionalGAN

    lake = str(tmp_path / "lake")
    designer_uri = str(tmp_path / "designer.pt")
    args = [f"lake_uri={lake}", f"data.catalogue_uri={models['catalogue_uri']}",
            f"generation.recommender_uri={models['rec_uri']}", f"generation.generator_uri={models['gan_uri']}",
            f"generation.designer_uri={designer_uri}", "design.restarts=3", "designer.epochs=2",
            "designer.validation=0.25", f"train.storage_path={tmp_path / 'train'}"]
    assert main(["train-designer", *args]) == 0
    out = capsys.readouterr().out
    assert "objective on held-out users: designer" in out and designer_uri in out
    version = load_designer(designer_uri).model_version

    cfg = job_config(models, lake, "design.mode=amortised+refine", "design.refine_steps=1",
                     f"generation.designer_uri={designer_uri}")
    summary = run_generation(cfg)
    assert summary.pairs_done == NUM_USERS * len(models["categories"]) and summary.pairs_failed == 0
    assert set(reader.read_run(lake, "2026-11-26", columns=["mode"]).column("mode").to_pylist()) == \
        {"amortised+refine"}
    assert reader.run_info(lake, "2026-11-26")["properties"]["designer_version"] == version

    # A pair's designs are a function of (pair_id, run_date, designer version): recomputed with other batching and
    # blocks, they are the same designs, up to float summation order (other batch shapes; the refine step carries
    # it: 1 latent of 1280 once differed by 1.8e-5), far below a design's resolution.
    def designs() -> pa.Table:
        return reader.read_run(lake, "2026-11-26", columns=["pair_id", "rank", "latent", "score"]).sort_by(
            [("pair_id", "ascending"), ("rank", "ascending")])

    first = designs()
    run_generation(job_config(models, lake, "design.mode=amortised+refine", "design.refine_steps=1",
                              f"generation.designer_uri={designer_uri}", "design.batch_pairs=3",
                              "generation.pairs_per_block=7"), force=True)
    again = designs()
    assert again.column("pair_id").equals(first.column("pair_id"))
    np.testing.assert_allclose(np.stack(again.column("latent").to_numpy(zero_copy_only=False)),
                               np.stack(first.column("latent").to_numpy(zero_copy_only=False)), atol=1e-4)
    np.testing.assert_allclose(again.column("score").to_numpy(), first.column("score").to_numpy(), atol=1e-4)

    other = tmp_path / "other-gan.pt"  # a designer for another generator is refused before any design
    ConditionalGAN("small", 8, models["categories"], (1, 28, 28)).save(str(other))
    assert main(["generate", *args, f"generation.generator_uri={other}", "design.mode=amortised",
                 "run_date=2026-11-27"]) == 2
    assert "retrain it with fashiongen train-designer" in capsys.readouterr().err
