"""`fashiongen export` and `fashiongen evaluate` end to end; the export round-trips through S3 (moto server)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashiongen import storage
from fashiongen.cli import main
from fashiongen.config import load_config
from fashiongen.data.contract import load_catalogue
from fashiongen.models.bprmf import BPRMF
from fashiongen.models.export import top_items

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def catalogue_uri(shared_catalogue):
    return shared_catalogue(num_items=40, num_users=12, per_user=6)


@pytest.fixture(scope="module")
def trained(catalogue_uri):
    catalogue = load_catalogue(catalogue_uri, with_images=False)
    model = BPRMF(k=4, epochs=3)
    model.fit(catalogue)
    return catalogue, model


def test_export_round_trips_through_s3(s3_server, catalogue_uri, trained):
    catalogue, model = trained
    lake = "s3://lake/export-test"
    model_uri = storage.join(lake, "models", "recommender", "bprmf.pt")
    version = model.save(model_uri)
    assert main(["export", f"lake_uri={lake}", f"data.catalogue_uri={catalogue_uri}", "recommender.model=bprmf",
                 "recommender.top_k=2"]) == 0
    out = storage.join(lake, "export", "recommender", version)
    users = storage.read_table(storage.join(out, "users.parquet"))
    items = storage.read_table(storage.join(out, "items.parquet"))
    top = storage.read_table(storage.join(out, "top_items.parquet")).to_pandas()
    import pyarrow as pa

    assert users.schema.field("theta").type.equals(pa.list_(pa.float32()), check_metadata=False)
    assert set(users.column("model_version").to_pylist()) == {version} == set(top["model_version"])
    theta = np.stack(users.column("theta").to_numpy(zero_copy_only=False))
    phi = np.stack(items.column("phi").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(theta @ phi.T, model.score(np.arange(catalogue.num_users)).numpy(), rtol=1e-5, atol=1e-6)
    assert items.column("category").to_pylist() == [catalogue.categories[c] for c in catalogue.item_category]

    # top-k per (user, category) = brute force over that category's items, ranks 1..k, the user's items included
    scores = model.score(np.arange(catalogue.num_users)).numpy()
    user_index = {u: k for k, u in enumerate(catalogue.user_ids)}
    item_index = {i: k for k, i in enumerate(catalogue.item_ids)}
    assert len(top) == catalogue.num_users * len(catalogue.categories) * 2
    for (user, category), group in top.groupby(["user_id", "category"]):
        c = catalogue.categories.index(category)
        candidates = np.flatnonzero(catalogue.item_category == c)
        best = candidates[np.argsort(-scores[user_index[user], candidates], kind="stable")[:2]]
        assert list(group.sort_values("rank")["rank"]) == [1, 2]
        np.testing.assert_allclose(group.sort_values("rank")["score"], scores[user_index[user], best], rtol=1e-5)
        assert [item_index[i] for i in group.sort_values("rank")["item_id"]] == list(best) or \
            np.allclose(scores[user_index[user], best[0]], scores[user_index[user], best[1]])


def test_top_items_can_exclude_training_items(trained):
    catalogue, model = trained
    top = top_items(model, catalogue, top_k=3, exclude_train=True, user_block=5)
    train = set(zip(catalogue.train_users.tolist(), catalogue.train_items.tolist()))
    assert len(top["user"]) and not any((u, i) in train for u, i in zip(top["user"].tolist(), top["item"].tolist()))


def test_evaluate_writes_results_and_prints_a_table(catalogue_uri, trained, tmp_path, capsys):
    catalogue, model = trained
    lake = str(tmp_path / "lake")
    model.save(storage.join(lake, "models", "recommender", "bprmf.pt"))
    from fashiongen.models.poprank import PopRank

    pop = PopRank()
    pop.fit(catalogue)
    pop.save(storage.join(lake, "models", "recommender", "poprank.pt"))
    assert main(["evaluate", f"lake_uri={lake}", f"data.catalogue_uri={catalogue_uri}"]) == 0
    printed = capsys.readouterr().out
    assert "| bprmf |" in printed and "| poprank |" in printed and "AUC sampled-100" in printed
    out = storage.join(lake, "evaluation", "recommender", "test")
    rows = json.loads(storage.read_bytes(storage.join(out, "results.json")))
    assert [r["model"] for r in rows] == ["bprmf", "poprank"]
    for r in rows:
        assert r["auc_full_lo"] <= r["auc_full"] <= r["auc_full_hi"] and r["users"] == catalogue.num_users
    per_user = storage.read_table(storage.join(out, "per_user.parquet")).to_pandas()
    assert len(per_user) == 2 * catalogue.num_users
    assert per_user.groupby("model")["auc_full"].mean()["bprmf"] == pytest.approx(rows[0]["auc_full"])


def test_evaluate_without_checkpoints_says_what_to_do(catalogue_uri, tmp_path, capsys):
    assert main(["evaluate", f"lake_uri={tmp_path}", f"data.catalogue_uri={catalogue_uri}"]) == 2
    assert "fashiongen train-recommender" in capsys.readouterr().err
