"""Hostile inputs to the designs job and the trainers: each is refused with one line naming the fix before Ray
starts, and nothing already written (a published run, a catalogue, a trained model) is lost, `--force` included."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from fashiongen import cli, storage
from fashiongen.config import load_config
from fashiongen.generation.plan import read_id_list
from fashiongen.lake import publish, reader
from fashiongen.lake.paths import LakePaths
from fixtures import fmnist_catalogue_with_models, needs_fmnist

DATE = "2026-11-26"


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    """Every refusal here comes before Ray: the process looks Ray-less (a session Ray may be up) and starting Ray
    fails the test."""
    import ray

    def started(*args, **kwargs):
        raise AssertionError("the command started Ray before refusing its input")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", started)


def _error(capsys, *argv: str) -> str:
    """Run the CLI: it must exit 2 with one `error:` line (and start no Ray, see _no_ray)."""
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A simulated Fashion-MNIST catalogue, real (untrained) DVBPR, PopRank and LSGAN checkpoints, and a lake with
    one published run written without Ray."""
    from fashiongen.models.dvbpr import DVBPR
    from fashiongen.models.poprank import PopRank

    base = tmp_path_factory.mktemp("hostile")
    cfg = load_config(None, [f"data.catalogue_uri={base}/catalogue", "data.max_items=200",
                             "simulation.num_users=6", "recommender.k=8"])
    catalogue = fmnist_catalogue_with_models(cfg, str(base / "dvbpr.pt"), str(base / "generator.pt"),
                                             str(base / "lake"))
    pop = PopRank()
    pop.fit(catalogue)
    pop.save(str(base / "poprank.pt"))
    other = DVBPR(k=8).build(catalogue.num_users + 3, catalogue.num_items, (1, 28, 28))
    other.save(str(base / "other-catalogue.pt"))
    lake = str(base / "lake")
    publish.write_designs(_one_design(catalogue.user_ids[0], catalogue.categories[0]), lake, DATE)
    publish.publish_run(lake, DATE, model_version="published")
    return {"base": base, "catalogue_uri": cfg.data.catalogue_uri, "lake": lake}


def _one_design(user: str, category: str) -> pa.Table:
    from fashiongen.data.images import encode_png
    from fashiongen.lake.layout import DESIGNS_SCHEMA, make_pair_id

    row = {"run_date": DATE, "model_version": "published", "pair_id": make_pair_id(user, category), "user_id": user,
           "category": category, "rank": 1, "score": 1.0, "realism": 0.5, "latent": [0.0],
           "image_png": encode_png(np.zeros((4, 4, 1), np.uint8)), "image_uri": None, "dataset_top_item_ids": [],
           "dataset_top_scores": [], "lift": 0.0, "oracle_score": None, "dataset_oracle_scores": None}
    return pa.Table.from_pylist([row], schema=DESIGNS_SCHEMA)


def _generate(shop, *extra: str) -> list[str]:
    base = shop["base"]
    return ["generate", f"lake_uri={shop['lake']}", f"data.catalogue_uri={shop['catalogue_uri']}",
            f"run_date={DATE}", f"generation.recommender_uri={base / 'dvbpr.pt'}",
            f"generation.generator_uri={base / 'generator.pt'}", *extra]


def _snapshot(lake: str) -> dict[str, bytes]:
    """Every file of the designs table (data and metadata) and of its catalog."""
    folders = (Path(LakePaths(lake).designs()), Path(LakePaths(lake).iceberg_catalog()).parent)
    return {str(p.relative_to(lake)): p.read_bytes() for folder in folders
            for p in sorted(folder.rglob("*")) if p.is_file()}


@needs_fmnist
def test_force_with_a_truncated_checkpoint_keeps_the_published_run(shop, capsys):
    before = _snapshot(shop["lake"])
    truncated = shop["base"] / "truncated.pt"
    truncated.write_bytes((shop["base"] / "dvbpr.pt").read_bytes()[:1000])
    err = _error(capsys, *_generate(shop, f"generation.recommender_uri={truncated}"), "--force")
    assert "unreadable" in err and str(truncated) in err
    assert _snapshot(shop["lake"]) == before and reader.list_complete_runs(shop["lake"]) == [DATE]


@needs_fmnist
@pytest.mark.parametrize("model, says", [("poprank.pt", "cannot score new images"),
                                         ("other-catalogue.pt", "trained on another catalogue")])
def test_a_recommender_that_cannot_design_is_refused_before_ray(shop, capsys, model, says):
    err = _error(capsys, *_generate(shop, f"generation.recommender_uri={shop['base'] / model}", "run_date=2026-11-27"))
    assert says in err and model in err


@needs_fmnist
@pytest.mark.parametrize("override, key", [("design.restarts=0", "design.restarts"),
                                           ("design.batch_pairs=0", "design.batch_pairs"),
                                           ("design.steps=-1", "design.steps"), ("design.eta=-0.5", "design.eta")])
def test_bad_design_settings_name_the_key(shop, capsys, override, key):
    assert key in _error(capsys, *_generate(shop, override))


@needs_fmnist
def test_bad_training_settings_never_overwrite_a_trained_model(shop, tmp_path, capsys):
    model = tmp_path / "lake" / "models" / "recommender" / "dvbpr.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a trained model")
    for override in ("recommender.batch_size=0", "recommender.epochs=-1"):
        key = override.split("=")[0]
        assert key in _error(capsys, "train-recommender", f"lake_uri={tmp_path / 'lake'}",
                             f"data.catalogue_uri={shop['catalogue_uri']}", override)
    assert model.read_bytes() == b"a trained model"


@needs_fmnist
def test_a_gan_batch_larger_than_the_catalogue_trains_nothing_and_saves_nothing(shop, tmp_path, capsys):
    err = _error(capsys, "train-gan", f"lake_uri={tmp_path / 'lake'}", f"data.catalogue_uri={shop['catalogue_uri']}",
                 "gan.batch_size=1000")
    assert "gan.batch_size=1000" in err and "no step" in err
    assert not (tmp_path / "lake" / "models" / "generator.pt").exists()


def test_duplicate_ids_in_a_listed_input_are_designed_once_and_counted(tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu1\nu2\nu1\nu1\n")
    table, dropped = read_id_list(str(users), ["user_id"])
    assert sorted(table.column("user_id").to_pylist()) == ["u1", "u2"] and dropped == 2
    pairs = tmp_path / "pairs.parquet"
    storage.write_table(pa.table({"user_id": ["u1", "u1", "u2"], "category": ["Bag", "Bag", "Bag"]}), str(pairs))
    table, dropped = read_id_list(str(pairs), ["user_id", "category"])
    assert table.num_rows == 2 and dropped == 1


def _shop_folder(root: Path, colour: int) -> Path:
    for category in ("shoes", "tops"):
        (root / category).mkdir(parents=True, exist_ok=True)
        for k in range(4):
            Image.new("RGB", (12, 12), (colour, k * 40, 9)).save(root / category / f"p{k}.png")
    return root


def test_prepare_force_with_a_bad_source_keeps_the_old_catalogue(tmp_path, capsys):
    shop_dir = _shop_folder(tmp_path / "shop", 200)
    good = tmp_path / "good.csv"
    pd.DataFrame([("alice", f"tops/p{k}", 1_700_000_000 + k) for k in range(4)],
                 columns=["user_id", "item_id", "ts"]).to_csv(good, index=False)
    catalogue = str(tmp_path / "catalogue")
    common = [f"data.catalogue_uri={catalogue}", "data.source=folder", f"data.images_dir={shop_dir}"]
    assert cli.main(["prepare", *common, f"data.interactions_path={good}"]) == 0
    before = {p.name: p.read_bytes() for p in Path(catalogue).iterdir() if p.is_file()}
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"user": ["a"], "item_id": ["tops/p0"], "ts": [1]}).to_csv(bad, index=False)
    capsys.readouterr()
    err = _error(capsys, "prepare", *common, f"data.interactions_path={bad}", "--force")
    assert "user_id" in err
    assert {p.name: p.read_bytes() for p in Path(catalogue).iterdir() if p.is_file()} == before
    assert json.loads((Path(catalogue) / "catalogue.json").read_text())["counts"]["users"] == 1
    assert not list(tmp_path.glob("catalogue.staging-*"))  # the staging copy is cleaned up
