"""CategoryPop: the counting baseline every learned recommender must clear; added as one file, found by the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashiongen.config import load_config
from fashiongen.data.contract import load_catalogue
from fashiongen.evaluation.auc import full_auc, held_out
from fashiongen.models.categorypop import CategoryPop
from fashiongen.models.contract import RECOMMENDERS, load_recommender, recommender_class
from fixtures import planted_catalogue


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("categorypop") / "catalogue")
    planted_catalogue(uri)
    return load_catalogue(uri, with_images=False)


def test_the_registry_finds_the_new_file():
    assert recommender_class("categorypop") is CategoryPop and RECOMMENDERS["categorypop"] is CategoryPop
    assert not CategoryPop.needs_images and not CategoryPop.distributed and not CategoryPop.visual


def test_scores_equal_a_brute_force_count(catalogue):
    model = CategoryPop.from_config(load_config(None, ["recommender.eval_users=0"]).recommender)
    model.fit(catalogue)
    counts = np.bincount(catalogue.train_items, minlength=catalogue.num_items)
    expected = np.zeros((catalogue.num_users, catalogue.num_items))
    for u in range(catalogue.num_users):
        mine = catalogue.item_category[catalogue.train_items[catalogue.train_users == u]]
        for i in range(catalogue.num_items):
            share = float(np.mean(mine == catalogue.item_category[i])) if len(mine) else 0.0
            expected[u, i] = share + model.weight * counts[i]
    users = np.arange(catalogue.num_users)
    np.testing.assert_allclose(model.score(users).numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.score(users), model.user_vectors() @ model.item_features().T)


def test_weight_is_the_validation_best_and_round_trips(catalogue, tmp_path):
    model = CategoryPop(eval_users=0)
    model.fit(catalogue)
    aucs = {float(w): a for w, a in model.meta["validation_auc_by_weight"].items()}
    assert aucs[model.weight] == max(aucs.values())
    model.weight = 0.3
    direct = float(np.nanmean(full_auc(model.score, held_out(catalogue, "validation"))))
    assert direct == pytest.approx(aucs[0.3])  # the table holds the validation AUC of each weight
    model.weight = max(aucs, key=lambda w: (aucs[w], -w))
    uri = str(tmp_path / "categorypop.pt")
    model.save(uri)
    loaded = load_recommender(uri)
    assert isinstance(loaded, CategoryPop) and loaded.weight == model.weight
    torch.testing.assert_close(loaded.score(np.arange(5)), model.score(np.arange(5)))
