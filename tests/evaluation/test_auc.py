"""Every AUC function against a brute-force reference on small random inputs, ties included."""
from __future__ import annotations

import numpy as np
import pytest

from fashiongen.evaluation.auc import (bootstrap_ci, cold_mask, full_auc, held_out, per_user_auc, sample_negatives,
                                       sampled_auc)
from fixtures import random_catalogue


def brute_force(scores: np.ndarray, cat, split: str, negatives_ids: np.ndarray | None = None) -> np.ndarray:
    held = cat.test_item if split == "test" else cat.validation_item
    out = []
    for u in range(cat.num_users):
        seen = set(cat.train_items[cat.train_users == u]) | {cat.validation_item[u], cat.test_item[u]}
        pos = scores[u, held[u]]
        if negatives_ids is None:  # full: every never-interacted item, ties half
            negs = [j for j in range(cat.num_items) if j not in seen]
            out.append(np.mean([1.0 if pos > scores[u, j] else 0.5 if pos == scores[u, j] else 0.0 for j in negs]))
        else:  # sampled: the drawn ids not interacted with, strict
            negs = [j for j in negatives_ids[u] if j not in seen]
            out.append(np.mean([pos > scores[u, j] for j in negs]) if negs else np.nan)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("split", ["test", "validation"])
def test_full_and_sampled_auc_match_brute_force_with_ties(seed, split):
    cat = random_catalogue(seed)
    rng = np.random.default_rng(seed + 10)
    scores = rng.integers(0, 4, size=(cat.num_users, cat.num_items)).astype(np.float32)  # many ties
    data = held_out(cat, split)
    np.testing.assert_allclose(full_auc(lambda u: scores[u], data, batch_users=5), brute_force(scores, cat, split))
    drawn = sample_negatives(cat.num_users, cat.num_items, seed=3)  # 37 items < 100: every id, strict >
    np.testing.assert_allclose(sampled_auc(lambda u: scores[u], data, seed=3, batch_users=7),
                               brute_force(scores, cat, split, drawn), equal_nan=True)


def test_sampled_auc_uses_the_seeded_draw_and_drops_interacted_ids():
    cat = random_catalogue(5, num_items=150)
    scores = np.random.default_rng(0).normal(size=(cat.num_users, cat.num_items))
    data = held_out(cat, "test")
    drawn = sample_negatives(cat.num_users, cat.num_items, seed=9)
    assert drawn.shape == (cat.num_users, 100)
    assert all(len(set(row)) == 100 for row in drawn)  # without replacement, as random.sample
    np.testing.assert_allclose(sampled_auc(lambda u: scores[u], data, seed=9), brute_force(scores, cat, "test", drawn))
    assert not np.array_equal(sample_negatives(cat.num_users, cat.num_items, seed=10), drawn)


def test_one_pass_gives_both_aucs_and_strict_ties_only_lower_the_sampled_one():
    cat = random_catalogue(7, num_items=60)
    scores = np.random.default_rng(1).integers(0, 3, size=(cat.num_users, cat.num_items)).astype(float)
    data = held_out(cat, "test")
    full, sampled = per_user_auc(lambda u: scores[u], data, seed=4, batch_users=4)
    drawn = sample_negatives(cat.num_users, cat.num_items, seed=4)  # 60 items < 100: every id
    np.testing.assert_allclose(sampled, brute_force(scores, cat, "test", drawn))
    np.testing.assert_allclose(full, brute_force(scores, cat, "test"))
    assert (sampled <= full + 1e-12).all()  # strict > can only lose the ties' half


def test_random_scores_give_half_and_cold_mask_follows_positives():
    cat = random_catalogue(3, num_users=400, num_items=300)
    data = held_out(cat, "test")
    auc = full_auc(lambda u: np.random.default_rng(int(u[0])).normal(size=(len(u), cat.num_items)), data)
    assert abs(auc.mean() - 0.5) < 0.03
    np.testing.assert_array_equal(cold_mask(data, cat.is_cold), cat.is_cold[cat.test_item])


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_users():
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5000)
    lo, hi = bootstrap_ci(small, reps=400)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large, reps=400)
    assert hi2 - lo2 < (hi - lo) / 4
    assert np.isnan(bootstrap_ci(np.array([np.nan]))[0])
