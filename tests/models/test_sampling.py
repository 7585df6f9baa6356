"""BPR triples: the official sampler draw for draw at share 0; with category-aware negatives, the configured share
of negatives from the positive's category, and never one of the user's training items."""
from __future__ import annotations

import numpy as np

from fashiongen.models.bpr import CategoryIndex, TrainSet, sample_triples


def _train(seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(50), 12)
    items = rng.integers(0, 400, size=len(users))
    return TrainSet.from_pairs(users, items, 50, 400), np.repeat(np.arange(8), 50)


def _official(train: TrainSet, n: int, rng: np.random.Generator):
    """The sampler as it was before category-aware negatives (the paper's)."""
    counts = np.diff(train.indptr)
    active = np.flatnonzero(counts > 0)
    users = active[rng.integers(0, len(active), size=n)] if len(active) < train.num_users \
        else rng.integers(0, train.num_users, size=n)
    pos = train.items[train.indptr[users] + (rng.random(n) * counts[users]).astype(np.int64)]
    neg = rng.integers(0, train.num_items, size=n)
    bad = np.flatnonzero(train.contains(users, neg))
    while len(bad):
        neg[bad] = rng.integers(0, train.num_items, size=len(bad))
        bad = bad[train.contains(users[bad], neg[bad])]
    return users, pos, neg


def test_share_zero_is_the_official_sampler_draw_for_draw():
    train, cats = _train()
    got = sample_triples(train, 5000, np.random.default_rng(7), 0.0, CategoryIndex.from_categories(cats))
    want = _official(train, 5000, np.random.default_rng(7))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_same_category_negatives_take_their_share_and_never_a_positive():
    train, cats = _train()
    index = CategoryIndex.from_categories(cats)
    base_rate = float(np.mean(cats[:, None] == cats[None, :]))  # same category by chance: 1/8
    for share in (0.5, 1.0):
        users, pos, neg = sample_triples(train, 20000, np.random.default_rng(1), share, index)
        same = float(np.mean(cats[pos] == cats[neg]))
        assert abs(same - (share + (1 - share) * base_rate)) < 0.02, (share, same)
        assert not train.contains(users, neg).any()
