"""The sweet-spot taste: an ideal inside the real range, overshooting loses, the linear preset kept bit for bit,
older truth files refused, and what the judges measure of a design (extrapolation, novelty, the truly best item)."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from fashiongen.config import SimulationConfig, load_config
from fashiongen.data.contract import CatalogueError, load_catalogue, write_catalogue
from fashiongen.data.fashion_mnist import items_table, load_fashion_mnist
from fashiongen.data.oracle import (EXTRAPOLATION_RANGE, attribute_diversity, load_truth, oracle_features,
                                    write_truth)
from fashiongen.data.simulate import simulate_shoppers
from fixtures import FMNIST, needs_fmnist

# sha256 of the linear truth and interactions of 400 Fashion-MNIST items and 200 shoppers (seed 3), computed with
# the code before the sweet-spot taste existed (commit 0c8f7ca), with conftest's OMP_NUM_THREADS=1 (BLAS rounding
# depends on the thread count): `simulation.preset=linear` must reproduce it.
LINEAR_TRUTH_SHA256 = "3076c5faa4fd9d213b0669138ab2e987026f8c952bcb2e3de2f0e6dd33224502"


@pytest.fixture(scope="module")
def fmnist():
    return load_fashion_mnist(FMNIST, 400)


def _simulate(image_set, **overrides):
    cfg = dataclasses.replace(SimulationConfig(), **{"num_users": 200, **overrides})
    return simulate_shoppers(image_set.images, image_set.item_ids, image_set.item_category, image_set.categories, cfg)


@needs_fmnist
def test_linear_preset_reproduces_the_earlier_truth_bit_for_bit(fmnist):
    cfg = load_config(None, ["simulation.preset=linear", "simulation.num_users=200", "simulation.seed=3"])
    sim = simulate_shoppers(fmnist.images, fmnist.item_ids, fmnist.item_category, fmnist.categories, cfg.simulation)
    digest = hashlib.sha256()
    t = sim.truth
    for array in (t.affinity, t.style, t.log_normaliser, t.item_features, t.popularity, t.feature_mean, t.feature_std):
        digest.update(np.ascontiguousarray(array).tobytes())
    for column in ("user_id", "item_id"):
        digest.update("\x1f".join(sim.interactions.column(column).to_pylist()).encode())
    digest.update(sim.interactions.column("ts").cast("int64").to_numpy().tobytes())
    assert t.version == "pixelstats-1" and digest.hexdigest() == LINEAR_TRUTH_SHA256


@needs_fmnist
def test_every_shoppers_ideal_lies_inside_the_real_range_and_overshooting_loses(fmnist):
    truth = _simulate(fmnist).truth
    assert truth.version == "sweetspot-1"
    users = np.arange(len(truth.user_ids))
    ideal = truth.ideal_z(users)  # (U, C, F)
    for c in range(len(truth.categories)):
        real = truth.item_z[truth.item_category == c]
        low, high = np.quantile(real, 0.05, axis=0), np.quantile(real, 0.95, axis=0)
        assert ((ideal[:, c] >= low - 1e-5) & (ideal[:, c] <= high + 1e-5)).all()
        lowest, highest = real.min(axis=0), real.max(axis=0)
        category = np.full(len(users), c)
        at_ideal = truth.preference_of_z(users, ideal[:, c], category)
        for f in range(real.shape[1]):  # push one attribute past the real range, either way: the taste drops
            for edge, step in ((highest[f], 0.5), (lowest[f], -0.5)):
                at_edge, past = ideal[:, c].copy(), ideal[:, c].copy()
                at_edge[:, f], past[:, f] = edge, edge + step
                edge_taste = truth.preference_of_z(users, at_edge, category)
                past_taste = truth.preference_of_z(users, past, category)
                assert (past_taste < edge_taste).all() and (edge_taste <= at_ideal + 1e-6).all()


@needs_fmnist
def test_judges_measure_extrapolation_novelty_and_the_truly_best_item(fmnist):
    truth = _simulate(fmnist).truth
    items = np.arange(20)
    category = truth.item_category[items]
    copies = truth.image_z(fmnist.images[items], category)  # a copy of a real item: novelty 0, inside the range
    assert np.allclose(truth.novelty(copies, category), 0.0, atol=1e-3)
    assert (truth.extrapolation(truth.item_z[items], category) >= 0).all()
    pushed = copies.copy()
    pushed[:, 0] = 50.0  # far past any real garment on one attribute
    assert (truth.extrapolation(pushed, category) > 40).all() and (truth.novelty(pushed, category) > 1).all()
    inside = np.array([np.quantile(truth.item_z[truth.item_category == c], 0.5, axis=0) for c in category])
    assert (truth.extrapolation(inside, category) == 0).all() and EXTRAPOLATION_RANGE == (0.01, 0.99)
    users = np.arange(20)
    best = truth.category_best(users, category)
    for u, c, b in zip(users, category, best):
        assert b == pytest.approx(truth.taste_logit([u], np.flatnonzero(truth.item_category == c)).max())
    groups = np.stack([copies[:3], copies[:3]])
    groups[1] = copies[0]  # three copies of one item: no diversity
    diversity = attribute_diversity(groups)
    assert diversity[0] > 0 and diversity[1] == pytest.approx(0.0, abs=1e-6)


@needs_fmnist
def test_older_truth_files_are_refused_with_the_command_that_rebuilds_them(fmnist, tmp_path):
    sim = _simulate(fmnist, taste="linear")
    uri = str(tmp_path / "cat")
    write_truth(uri, sim.truth)
    write_catalogue(uri, items_table(fmnist), sim.interactions, {"source": "fashion_mnist", "simulated": True},
                    categories=fmnist.categories)
    catalogue = load_catalogue(uri, with_images=False)
    assert load_truth(uri, catalogue).taste == "linear"
    info_path = tmp_path / "cat" / "truth" / "oracle.json"
    info = json.loads(info_path.read_text())
    for key in ("truth_format", "taste", "style"):  # what a truth file written before the sweet spot lacked
        info.pop(key)
    info_path.write_text(json.dumps(info))
    with pytest.raises(CatalogueError, match=r"fashiongen prepare --force") as caught:
        load_truth(uri, catalogue)
    assert "\n" not in str(caught.value) and "pixelstats-1" in str(caught.value)


def test_an_unknown_taste_is_named():
    images = np.zeros((2, 8, 8, 1), np.uint8)
    with pytest.raises(CatalogueError, match="simulation.taste"):
        oracle_features(images, "quadratic")
