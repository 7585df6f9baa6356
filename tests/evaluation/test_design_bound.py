"""The design bound: 100% when the estimate is the true ideal, higher with more interactions a user, and a one-line
error on a catalogue without truth."""
from __future__ import annotations

import numpy as np
import pytest

from fashiongen.config import load_config
from fashiongen.data.contract import CatalogueError, load_catalogue
from fashiongen.data.oracle import load_truth
from fashiongen.data.prepare import prepare_catalogue
from fashiongen.evaluation.design_bound import catalogue_bound, design_bound
from fixtures import bar_catalogue, needs_fmnist

pytestmark = needs_fmnist


def _simulated(tmp_path, mean_extra: float) -> str:
    cfg = load_config(None, [f"data.catalogue_uri={tmp_path / f'extra-{mean_extra:g}'}", "data.max_items=1000",
                             "simulation.num_users=300", f"simulation.mean_extra_interactions={mean_extra:g}"])
    prepare_catalogue(cfg)
    return cfg.data.catalogue_uri


def test_the_true_ideal_beats_every_real_item(tmp_path):
    uri = _simulated(tmp_path, 7)
    catalogue = load_catalogue(uri, with_images=False)
    truth = load_truth(uri, catalogue)
    users = np.repeat(np.arange(catalogue.num_users), len(catalogue.categories))
    cats = np.tile(np.arange(len(catalogue.categories)), catalogue.num_users)
    ideal = truth.ideal_z(users)[np.arange(len(users)), cats]
    verdict = design_bound(truth, catalogue, users, cats, estimate=ideal)
    assert verdict["beats_retrieved"].all() and verdict["beats_best"].all()
    pooled = design_bound(truth, catalogue, users, cats)  # a few noisy picks: far from every pair
    assert 0.3 < pooled["beats_retrieved"].mean() < 0.95 and pooled["beats_best"].mean() < pooled["beats_retrieved"].mean()
    assert (pooled["truly_best"] >= pooled["retrieved"] - 1e-6).all()  # retrieved items are real items of the category


def test_the_bound_rises_with_interactions_a_user(tmp_path):
    few, many = (catalogue_bound(_simulated(tmp_path, extra))["bound"] for extra in (7, 60))
    assert many["train interactions a user"] > 5 * few["train interactions a user"]
    assert many["beats retrieved low"] > few["beats retrieved high"]  # intervals apart
    assert few["pairs"] == many["pairs"] == 300 * 10
    assert set(few["estimator"].split(" / ")) <= {"pooled", "within", "fitted"}  # the best estimator of each share
    assert few["beats truly best"] <= few["beats retrieved"]


def test_a_catalogue_without_truth_is_a_one_line_error(tmp_path):
    uri = str(tmp_path / "bars")
    bar_catalogue(uri)
    with pytest.raises(CatalogueError, match="not simulated") as info:
        catalogue_bound(uri)
    assert "\n" not in str(info.value)
