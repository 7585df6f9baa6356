"""Nightly refresh of user vectors with the image network frozen, and the landing zone it reads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fashiongen.data.contract import load_catalogue
from fashiongen.data.landing import accept_landed
from fashiongen.models.bpr import TrainSet
from fashiongen.training.refresh import refresh_user_vectors


@pytest.fixture(scope="module")
def catalogue(shared_catalogue):
    return load_catalogue(shared_catalogue(num_items=120, num_users=40), with_images=False)


def _percentile(scores: torch.Tensor, items: np.ndarray) -> float:
    """Mean fraction of all items scored below each of `items` (1 = always on top)."""
    return float(np.mean([(scores < scores[i]).float().mean() for i in items]))


def test_refresh_ranks_each_users_items_higher_and_is_deterministic(catalogue):
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(catalogue.num_users, 8, generator=gen)
    phi = torch.randn(catalogue.num_items, 8, generator=gen)
    changed = np.array([3, 7])
    new_items = {3: np.array([10, 11, 12, 13]), 7: np.array([50, 51, 52, 53])}
    users = np.concatenate([catalogue.train_users, np.repeat(changed, 4)])
    items = np.concatenate([catalogue.train_items, *new_items.values()])
    train = TrainSet.from_pairs(users, items, catalogue.num_users, catalogue.num_items)
    settings = {"steps": 150, "lr": 0.05, "lambda_theta": 1.0, "seed": 0}

    vectors, losses = refresh_user_vectors(theta, phi, changed, train, **settings)
    again, _ = refresh_user_vectors(theta, phi, changed, train, **settings)
    assert vectors.shape == (2, 8) and torch.equal(vectors, again)  # deterministic under the seed
    assert losses[-1] < losses[0]
    for row, user in enumerate(changed):  # BPR ranks the user's items (old and new) above the rest
        positives = train.items[train.indptr[user]:train.indptr[user + 1]]
        before = _percentile(theta[user] @ phi.T, positives)
        after = _percentile(vectors[row] @ phi.T, positives)
        assert after > max(before + 0.1, 0.65), (user, before, after)
    empty, no_losses = refresh_user_vectors(theta, phi, np.array([], np.int64), train, **settings)
    assert empty.shape == (0, 8) and no_losses == []


def test_landed_rows_that_cannot_train_are_quarantined_with_reasons(catalogue):
    u0, u1 = catalogue.user_ids[:2]
    held = catalogue.item_ids[catalogue.validation_item[0]]
    landed = pd.DataFrame({
        "user_id": [u0, u0, u1, "newcomer", u1],
        "item_id": [catalogue.item_ids[5], held, "no-such-item", catalogue.item_ids[1], catalogue.item_ids[2]],
        "ts": pd.to_datetime(["2026-11-26T01:00Z"] * 4 + ["2026-11-25T23:00Z"], utc=True),  # on each row's date
        "date": ["2026-11-26", "2026-11-26", "2026-11-26", "2026-11-26", "2026-11-25"],
    })
    accepted = accept_landed(landed, catalogue, "2026-11-26")
    assert list(accepted.users) == [0, 1] and list(accepted.items) == [5, 2]
    assert list(accepted.today_users) == [0]  # u1's accepted row landed the day before
    reasons = accepted.quarantine.counts()
    assert reasons == {"landed: user not in the catalogue": 1, "landed: unknown item_id": 1,
                       "landed: the user's held-out evaluation item": 1}
