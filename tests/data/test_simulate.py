"""Simulated shoppers and the oracle: determinism, activity, truth round trip, AUC ceiling."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fashiongen.config import SimulationConfig
from fashiongen.data.contract import CatalogueError, load_catalogue, write_catalogue
from fashiongen.data.fashion_mnist import CLASSES, items_table, load_fashion_mnist, ImageSet
from fashiongen.data.images import to_tensor_range
from fashiongen.data.oracle import FEATURE_NAMES, load_truth, oracle_auc, oracle_features, write_truth
from fashiongen.data.simulate import simulate_shoppers
from fixtures import FMNIST, blob_image_set, blob_images, needs_fmnist


def _simulate(image_set: ImageSet, **overrides):
    cfg = dataclasses.replace(SimulationConfig(), **{"num_users": 300, **overrides})
    return simulate_shoppers(image_set.images, image_set.item_ids, image_set.item_category, image_set.categories, cfg)


def test_oracle_features_are_fixed_pixel_statistics():
    images = blob_images(8)
    feats = oracle_features(images, "linear")
    assert feats.shape == (8, len(FEATURE_NAMES)) and feats.dtype == np.float32
    assert np.allclose(feats[:, 0], images[..., 0].mean(axis=(1, 2)) / 255, atol=1e-6)  # mean intensity
    # the [-1, 1] NCHW form of the same images gives the same features
    assert np.allclose(oracle_features(to_tensor_range(images), "linear"), feats, atol=1e-6)
    flipped = oracle_features(images[:, :, ::-1], "linear")  # mirror: centre column changes sign, asymmetry unchanged
    col, asym = FEATURE_NAMES.index("centre_col"), FEATURE_NAMES.index("asymmetry")
    assert np.allclose(flipped[:, col], -feats[:, col], atol=1e-5)
    assert np.allclose(flipped[:, asym], feats[:, asym], atol=1e-5)


def test_simulation_is_deterministic_and_seed_dependent():
    image_set = blob_image_set()
    a, b = _simulate(image_set), _simulate(image_set)
    assert a.interactions.equals(b.interactions)
    assert np.array_equal(a.truth.style, b.truth.style)
    c = _simulate(image_set, seed=1)
    assert not a.interactions.equals(c.interactions)


def test_activity_has_floor_heavy_tail_and_no_repeats():
    sim = _simulate(blob_image_set(400), num_users=2000)
    frame = sim.interactions.to_pandas()
    per_user = frame.groupby("user_id").size()
    assert len(per_user) == 2000 and per_user.min() >= 5
    assert per_user.max() > 3 * per_user.median()  # heavy tail
    assert not frame.duplicated(["user_id", "item_id"]).any()
    assert frame["ts"].notna().all() and frame["ts"].min().year == 2024


def test_picks_follow_true_utility():
    """Users pick items of their high-affinity categories and of high true utility."""
    image_set = blob_image_set(300)
    sim = _simulate(image_set, num_users=400)
    frame = sim.interactions.to_pandas()
    u = np.searchsorted(sim.truth.user_ids, frame["user_id"].to_numpy())
    i = np.searchsorted(sim.truth.item_ids, frame["item_id"].to_numpy())
    picked = sim.truth.item_utility(np.arange(400))[u, i].mean()
    overall = sim.truth.item_utility(np.arange(400)).mean()
    assert picked > overall + 1.0


def test_small_categories_cap_picks():
    """A category with fewer items than a user's picks there sends the rest elsewhere, never repeats."""
    image_set = blob_image_set(40, categories=2)
    image_set.item_category = np.where(np.arange(40) < 3, 0, 1)
    sim = _simulate(image_set, num_users=200, category_concentration=0.05, mean_extra_interactions=10.0)
    frame = sim.interactions.to_pandas()
    assert not frame.duplicated(["user_id", "item_id"]).any()
    assert frame.groupby("user_id").size().min() >= 5


def test_bad_simulation_settings_are_named():
    with pytest.raises(CatalogueError, match="min_interactions"):
        _simulate(blob_image_set(), min_interactions=2)
    with pytest.raises(CatalogueError, match="too few"):
        _simulate(blob_image_set(6))


@pytest.mark.parametrize("taste", ["sweet_spot", "linear"])
def test_truth_round_trip_and_preferences(tmp_path, taste):
    image_set = blob_image_set()
    sim = _simulate(image_set, taste=taste)
    uri = str(tmp_path / "cat")
    write_truth(uri, sim.truth)
    write_catalogue(uri, items_table(image_set), sim.interactions, {"source": "test", "simulated": True},
                    categories=image_set.categories)
    catalogue = load_catalogue(uri)
    truth = load_truth(uri, catalogue)
    assert truth.taste == taste and truth.version == sim.truth.version
    users = np.arange(catalogue.num_users)
    assert np.allclose(truth.item_utility(users), sim.truth.item_utility(users), atol=1e-5)
    # image_preference of a catalogue image = taste logit of that item, whatever the image encoding
    items = np.arange(10)
    pref = truth.image_preference(np.zeros(10, np.int64), catalogue.images[items], catalogue.item_category[items])
    assert np.allclose(pref, truth.taste_logit([0], items)[0], atol=1e-4)
    pref_float = truth.image_preference(np.zeros(10, np.int64), to_tensor_range(catalogue.images[items]),
                                        catalogue.item_category[items])
    assert np.allclose(pref_float, pref, atol=1e-5)
    # exp(utility) is a distribution over each category's items, scaled by the category affinity
    probs = np.exp(truth.item_utility([0]))[0]
    per_cat = np.bincount(truth.item_category, probs)
    assert np.allclose(per_cat, truth.affinity[0], atol=1e-4)


def test_load_truth_rejects_real_catalogue(tmp_path):
    image_set = blob_image_set()
    sim = _simulate(image_set)
    uri = str(tmp_path / "real")
    write_catalogue(uri, items_table(image_set), sim.interactions, {"source": "folder", "simulated": False})
    with pytest.raises(CatalogueError, match="not simulated"):
        load_truth(uri, load_catalogue(uri, with_images=False))


def test_oracle_auc_ceiling_counts_ties_and_excludes_seen(tmp_path):
    image_set = blob_image_set()
    sim = _simulate(image_set)
    uri = str(tmp_path / "cat")
    write_truth(uri, sim.truth)
    write_catalogue(uri, items_table(image_set), sim.interactions, {"source": "t", "simulated": True})
    catalogue = load_catalogue(uri, with_images=False)
    truth = load_truth(uri, catalogue)
    # brute force for one user
    u = 7
    scores = truth.item_utility([u])[0]
    indptr, train = catalogue.train_csr()
    seen = set(train[indptr[u]:indptr[u + 1]]) | {catalogue.validation_item[u], catalogue.test_item[u]}
    neg = np.array([j for j in range(catalogue.num_items) if j not in seen])
    t = scores[catalogue.test_item[u]]
    expected = ((scores[neg] < t).sum() + 0.5 * (scores[neg] == t).sum()) / len(neg)
    single = oracle_auc(catalogue, truth, max_users=u + 1) * (u + 1) - oracle_auc(catalogue, truth, max_users=u) * u
    assert single == pytest.approx(expected, abs=1e-9)
    assert 0.5 < oracle_auc(catalogue, truth, score="category") < oracle_auc(catalogue, truth) < 1.0


@needs_fmnist
def test_default_settings_give_ceiling_between_080_and_097(tmp_path):
    """On a 10k-item stratified subset of Fashion-MNIST with the default simulation settings."""
    image_set = load_fashion_mnist(FMNIST, max_items=10000)
    assert image_set.categories == CLASSES
    cfg = dataclasses.replace(SimulationConfig(), num_users=1500)
    sim = simulate_shoppers(image_set.images, image_set.item_ids, image_set.item_category, image_set.categories, cfg)
    uri = str(tmp_path / "fm")
    write_truth(uri, sim.truth)
    write_catalogue(uri, items_table(image_set), sim.interactions, {"source": "fashion_mnist", "simulated": True},
                    categories=image_set.categories)
    catalogue = load_catalogue(uri, with_images=False)
    truth = load_truth(uri, catalogue)
    ceiling = oracle_auc(catalogue, truth)
    category_only = oracle_auc(catalogue, truth, score="category")
    assert 0.80 <= ceiling <= 0.97
    assert ceiling - category_only > 0.05  # pixels carry signal beyond the category
