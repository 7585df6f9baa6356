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


def test_epoch_triples_are_one_seeded_stream_replayed_on_demand():
    from fashiongen.models.bpr import EpochTriples

    train, cats = _train()
    index = CategoryIndex.from_categories(cats)
    rng = np.random.default_rng(3)
    want = [sample_triples(train, train.num_interactions, rng, 0.5, index) for _ in range(3)]
    stream = EpochTriples(train, 3, 0.5, index)
    for epoch in (0, 1, 2, 2, 1, 0, 2):  # forward, repeated, then back: a resumed worker asks for any epoch
        for a, b in zip(stream.at(epoch), want[epoch]):
            np.testing.assert_array_equal(a, b)
    assert len(stream.at(0)[0]) == train.num_interactions
    fresh = EpochTriples(train, 3, 0.5, index).at(2)  # a restarted process draws epoch 2 without epochs 0 and 1
    np.testing.assert_array_equal(fresh[2], want[2][2])


def test_epoch_shards_split_an_epoch_into_equal_contiguous_parts():
    from fashiongen.models.bpr import EpochTriples

    triples = tuple(np.arange(103) + k for k in range(3))
    shards = [EpochTriples.shard(triples, rank, 4) for rank in range(4)]
    assert [len(s[0]) for s in shards] == [25] * 4  # equal steps on every DDP rank; 3 triples dropped
    np.testing.assert_array_equal(np.concatenate([s[1] for s in shards]), triples[1][:100])
    assert [len(a) for a in EpochTriples.shard(triples, 0, 1)] == [103] * 3  # one worker: the whole epoch
