"""Taste fidelity: Spearman with ties averaged, 1.0 for the truth itself, about 0 for a random scorer."""
from __future__ import annotations

import numpy as np
import pytest

from fashiongen.evaluation.taste import average_ranks, spearman_rows, taste_fidelity


class FakeTruth:
    def __init__(self, num_users: int, item_category: np.ndarray, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.logits = rng.normal(size=(num_users, len(item_category))) + 3 * rng.normal(size=(num_users, 1)) \
            * (item_category[None, :] == 0)

    def taste_logit(self, users):
        return self.logits[np.asarray(users)]


def test_ranks_average_ties_as_a_brute_force_would():
    values = np.array([[3.0, 1.0, 3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(average_ranks(values), [[3.5, 0.5, 3.5, 2.0, 0.5]])
    rows = np.random.default_rng(1).integers(0, 4, size=(6, 30)).astype(float)
    for row, ranks in zip(rows, average_ranks(rows)):
        brute = [np.mean([k for k, v in enumerate(sorted(row)) if v == x]) for x in row]
        np.testing.assert_allclose(ranks, brute)


def test_spearman_of_monotone_and_reversed_rows():
    a = np.random.default_rng(2).normal(size=(4, 50))
    np.testing.assert_allclose(spearman_rows(a, np.exp(a)), 1.0)
    np.testing.assert_allclose(spearman_rows(a, -a), -1.0)
    assert np.isnan(spearman_rows(np.ones((1, 5)), a[:1, :5])[0])  # a constant scorer says nothing


def test_truth_scores_one_and_a_random_scorer_about_zero():
    item_category = np.repeat(np.arange(4), 60)
    truth = FakeTruth(80, item_category)
    users = np.arange(80)
    perfect = taste_fidelity(truth.taste_logit, truth, item_category, users)
    assert perfect == pytest.approx({"taste_overall": 1.0, "taste_within": 1.0})
    rng = np.random.default_rng(3)
    noise = taste_fidelity(lambda u: rng.normal(size=(len(u), len(item_category))), truth, item_category, users)
    assert abs(noise["taste_overall"]) < 0.05 and abs(noise["taste_within"]) < 0.05
