"""Trivial rivals: a nudged or rescaled photo of a real item must not buy a win under the true taste."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fashiongen.config import SimulationConfig, load_config
from fashiongen.data.fashion_mnist import load_fashion_mnist
from fashiongen.data.simulate import simulate_shoppers
from fashiongen.evaluation.nudge import SHIFTS, nudged_rival, rescale_images, shift_images, taste_invariance
from fixtures import FMNIST, needs_fmnist


def test_shifts_fill_background_and_rescale_keeps_the_size():
    images = np.zeros((1, 6, 6, 1), np.uint8)
    images[0, 2:4, 2:4] = 200
    moved = shift_images(images, 1, -2)
    assert moved[0, 3:5, 0:2, 0].min() == 200 and moved.sum() == images.sum()
    assert len(SHIFTS) == 24 and max(max(abs(dy), abs(dx)) for dy, dx in SHIFTS) == 3
    bigger = rescale_images(images, 1.5)
    assert bigger.shape == images.shape and (bigger > 0).sum() > (images > 0).sum()
    np.testing.assert_array_equal(rescale_images(images, 1.0), images)


@pytest.fixture(scope="module")
def shoppers():
    """400 Fashion-MNIST items and 300 shoppers under each taste (the same seed)."""
    image_set = load_fashion_mnist(FMNIST, 400)
    truths = {}
    for name, overrides in (("sweet_spot", []), ("linear", ["simulation.preset=linear"])):
        cfg = dataclasses.replace(load_config(None, overrides).simulation, num_users=300)
        truths[name] = simulate_shoppers(image_set.images, image_set.item_ids, image_set.item_category,
                                         image_set.categories, cfg).truth
    return image_set, truths


@needs_fmnist
def test_a_scorer_that_rewards_framing_cannot_buy_a_true_win_by_nudging_the_best_item(shoppers):
    """The rival picks the shift a framing-sensitive scorer likes best (the linear taste, which rewards where the
    garment sits): under the linear yardstick that nudge wins almost always, under the sweet spot no more than
    chance allows (<= 55% at >= 200 pairs, the issue's target)."""
    image_set, truths = shoppers
    rng = np.random.default_rng(0)
    pairs = 240
    users, categories = rng.integers(0, 300, pairs), rng.integers(0, 10, pairs)
    best = np.array([np.flatnonzero(image_set.item_category == c)[
        truths["sweet_spot"].taste_logit([u], np.flatnonzero(image_set.item_category == c))[0].argmax()]
        for u, c in zip(users, categories)])
    def framing(images, users, categories):
        return truths["linear"].image_preference(users, images, categories)

    under = {name: nudged_rival(framing, truth, image_set.images[best], users, categories)
             for name, truth in truths.items()}
    assert under["linear"]["win_share"] > 0.8
    assert under["sweet_spot"]["pairs"] >= 200 and under["sweet_spot"]["win_share"] <= 0.55


@needs_fmnist
def test_shifts_and_rescales_barely_move_the_sweet_spot_taste(shoppers):
    image_set, truths = shoppers
    rng = np.random.default_rng(1)
    items = rng.choice(len(image_set.item_ids), 300, replace=False)
    moved = taste_invariance(truths["sweet_spot"], image_set.images[items], rng.integers(0, 300, 300),
                             image_set.item_category[items], rng)
    assert np.median(moved["shift"]) <= 0.05 and np.median(moved["rescale"]) <= 0.10
    linear = taste_invariance(truths["linear"], image_set.images[items], rng.integers(0, 300, 300),
                              image_set.item_category[items], rng)
    assert np.median(linear["shift"]) > 3 * np.median(moved["shift"])
