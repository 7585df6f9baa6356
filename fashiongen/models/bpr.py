"""BPR training triples (u, i, j), sampled as the official DVBPR code does, vectorised.

u uniform over users (not interactions); i uniform over u's training items; j uniform over all items, rejecting
only u's training items (so u's validation or test item can be a negative, as in the official code). One epoch is
as many triples as there are training interactions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TrainSet:
    """Each user's training items as CSR, plus sorted (user * num_items + item) keys for membership tests."""

    num_users: int
    num_items: int
    indptr: np.ndarray  # (U + 1,) int64
    items: np.ndarray  # (T,) int64, grouped by user
    keys: np.ndarray  # (T,) int64, sorted

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> "TrainSet":
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        keys = np.unique(users * num_items + items)
        indptr = np.zeros(num_users + 1, np.int64)
        np.add.at(indptr, keys // num_items + 1, 1)
        return cls(num_users, num_items, np.cumsum(indptr), keys % num_items, keys)

    @classmethod
    def from_catalogue(cls, catalogue) -> "TrainSet":
        return cls.from_pairs(catalogue.train_users, catalogue.train_items, catalogue.num_users, catalogue.num_items)

    @property
    def num_interactions(self) -> int:
        return len(self.items)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training interaction."""
        query = np.asarray(users, np.int64) * self.num_items + np.asarray(items, np.int64)
        pos = np.clip(np.searchsorted(self.keys, query), 0, len(self.keys) - 1)
        return self.keys[pos] == query


def sample_triples(train: TrainSet, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n triples (users, positives, negatives), int64 arrays. Users without training items are never drawn."""
    counts = np.diff(train.indptr)
    active = np.flatnonzero(counts > 0)
    if len(active) == 0:
        raise ValueError("no user has a training interaction: cannot sample BPR triples")
    if (counts[active] >= train.num_items).any():
        raise ValueError("a user interacted with every item: no negative item exists for BPR")
    users = active[rng.integers(0, len(active), size=n)] if len(active) < train.num_users \
        else rng.integers(0, train.num_users, size=n)
    pos = train.items[train.indptr[users] + (rng.random(n) * counts[users]).astype(np.int64)]
    neg = rng.integers(0, train.num_items, size=n)
    bad = np.flatnonzero(train.contains(users, neg))
    while len(bad):
        neg[bad] = rng.integers(0, train.num_items, size=len(bad))
        bad = bad[train.contains(users[bad], neg[bad])]
    return users.astype(np.int64), pos.astype(np.int64), neg.astype(np.int64)
