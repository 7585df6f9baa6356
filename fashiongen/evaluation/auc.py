"""AUC of any scorer on a leave-one-out split: the paper's full AUC, the official code's sampled-100 AUC, cold-item AUC.

Conventions (one held-out positive i per user u; "interacted" = u's train, validation and test items):

- full AUC (the paper's formula): AUC_u = (1/|D_u|) Σ_{j ∈ D_u} [x_ui > x_uj] + ½ [x_ui = x_uj], D_u = every item u
  never interacted with. For the test AUC that excludes u's train and validation items from the negatives (and the
  test item itself); a random scorer gets 0.5, ties count half. The reported AUC is the mean of AUC_u over users.
- sampled-100 AUC (official `AUC()`): per user 100 distinct item ids drawn uniformly (seeded), those in u's interacted
  set dropped, AUC_u = fraction with x_ui > x_uj (strict: ties count 0). The official code drops only train items and
  the held-out item; we also drop the other held-out item, so both AUCs use the same negatives' population.
- cold AUC: the full AUC averaged over the users whose held-out positive is a cold item.

Everything is batched over users: `scores(users)` returns a (len(users), num_items) block, so 100k users x 70k items
never sit in memory at once. Pure numpy/torch (no Ray).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

ScoreFn = Callable[[np.ndarray], "torch.Tensor | np.ndarray"]
SAMPLED_NEGATIVES = 100


@dataclass
class HeldOut:
    """Users to evaluate, their held-out positive, and each user's interacted items (CSR over the evaluated users)."""

    users: np.ndarray  # (M,) int64 dense user indices
    positives: np.ndarray  # (M,) int64 item index of the held-out positive
    indptr: np.ndarray  # (M + 1,) int64
    interacted: np.ndarray  # unique items per user, positive included
    num_items: int


def held_out(catalogue, split: str = "test", users: np.ndarray | None = None) -> HeldOut:
    """The held-out pairs of `split` ("test" or "validation") for `users` (default all) of a Catalogue."""
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    users = np.arange(catalogue.num_users, dtype=np.int64) if users is None else np.asarray(users, np.int64)
    positives = (catalogue.test_item if split == "test" else catalogue.validation_item)[users]
    n = catalogue.num_items
    keys = np.concatenate([catalogue.train_users * n + catalogue.train_items,
                           np.arange(catalogue.num_users) * n + catalogue.validation_item,
                           np.arange(catalogue.num_users) * n + catalogue.test_item])
    keys = np.unique(keys)
    key_users = keys // n
    lo, hi = np.searchsorted(key_users, users, "left"), np.searchsorted(key_users, users, "right")
    counts = hi - lo
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    take = np.repeat(lo, counts) + (np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts))
    return HeldOut(users=users, positives=positives.astype(np.int64), indptr=indptr,
                   interacted=(keys[take] % n).astype(np.int64), num_items=n)


def _as_tensor(block: "torch.Tensor | np.ndarray") -> torch.Tensor:
    return block.detach().float().cpu() if isinstance(block, torch.Tensor) else torch.from_numpy(np.asarray(block, np.float32))


def sample_negatives(num_users: int, num_items: int, seed: int, k: int = SAMPLED_NEGATIVES) -> np.ndarray:
    """(num_users, min(k, num_items)) distinct item ids per row, uniform without replacement (as `random.sample`)."""
    rng = np.random.default_rng(seed)
    k = min(k, num_items)
    if k == num_items:
        return np.tile(np.arange(num_items, dtype=np.int64), (num_users, 1))
    out = rng.integers(0, num_items, size=(num_users, k))
    rows = np.arange(num_users)[:, None]
    while True:  # redraw every repeat of an id already in its row; by symmetry the rows are uniform k-subsets
        order = np.argsort(out, axis=1, kind="stable")
        srt = out[rows, order]
        repeat = np.zeros_like(out, dtype=bool)
        repeat[rows, order[:, 1:]] = srt[:, 1:] == srt[:, :-1]
        if not repeat.any():
            return out.astype(np.int64)
        out[repeat] = rng.integers(0, num_items, size=int(repeat.sum()))


def per_user_auc(scores: ScoreFn, data: HeldOut, *, seed: int = 0, batch_users: int = 256,
                 sampled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(full AUC per user, sampled-100 AUC per user) in one pass over user blocks. A user whose sampled ids were all
    interacted gets NaN in the sampled array (left out of its mean)."""
    m = len(data.users)
    full = np.zeros(m, np.float64)
    samp = np.full(m, np.nan, np.float64)
    negatives_ids = sample_negatives(m, data.num_items, seed) if sampled else None
    for lo in range(0, m, batch_users):
        hi = min(lo + batch_users, m)
        block = _as_tensor(scores(data.users[lo:hi]))
        rows = torch.arange(hi - lo)
        pos = block[rows, torch.from_numpy(data.positives[lo:hi])].unsqueeze(1)
        wins = (block < pos).sum(1, dtype=torch.float64) + 0.5 * (block == pos).sum(1, dtype=torch.float64)
        start, stop = data.indptr[lo], data.indptr[hi]
        counts = np.diff(data.indptr[lo:hi + 1])
        seen_rows = torch.from_numpy(np.repeat(np.arange(hi - lo), counts))
        seen = block[seen_rows, torch.from_numpy(data.interacted[start:stop])]
        pos_rows = pos[seen_rows, 0]
        seen_wins = (seen < pos_rows).double() + 0.5 * (seen == pos_rows).double()
        wins -= torch.zeros(hi - lo, dtype=torch.float64).index_add_(0, seen_rows, seen_wins)
        full[lo:hi] = (wins / torch.from_numpy(data.num_items - counts).double()).numpy()
        if negatives_ids is not None:
            ids = negatives_ids[lo:hi]
            keep = ~_is_interacted(ids, data, lo, hi)
            cand = block.gather(1, torch.from_numpy(ids))
            strict = ((pos > cand) & torch.from_numpy(keep)).sum(1).double().numpy()
            n_keep = keep.sum(1)
            samp[lo:hi] = np.where(n_keep > 0, strict / np.maximum(n_keep, 1), np.nan)
    return full, samp


def _is_interacted(ids: np.ndarray, data: HeldOut, lo: int, hi: int) -> np.ndarray:
    """Boolean mask of ids (rows = users lo..hi) that are in the user's interacted set."""
    n = data.num_items
    counts = np.diff(data.indptr[lo:hi + 1])
    keys = np.sort(np.repeat(np.arange(hi - lo), counts) * n + data.interacted[data.indptr[lo]:data.indptr[hi]])
    query = (np.arange(hi - lo)[:, None] * n + ids).ravel()
    pos = np.clip(np.searchsorted(keys, query), 0, max(len(keys) - 1, 0))
    return (keys[pos] == query).reshape(ids.shape) if len(keys) else np.zeros(ids.shape, bool)


def full_auc(scores: ScoreFn, data: HeldOut, batch_users: int = 256) -> np.ndarray:
    """Per-user full AUC (the paper's formula, ties count half)."""
    return per_user_auc(scores, data, batch_users=batch_users, sampled=False)[0]


def sampled_auc(scores: ScoreFn, data: HeldOut, seed: int = 0, batch_users: int = 256) -> np.ndarray:
    """Per-user sampled-100 AUC (official code, strict >, interacted ids dropped; NaN where none is left)."""
    return per_user_auc(scores, data, seed=seed, batch_users=batch_users)[1]


def cold_mask(data: HeldOut, is_cold: np.ndarray) -> np.ndarray:
    """Which evaluated users' held-out positive is a cold item (the cold AUC averages over them)."""
    return np.asarray(is_cold, bool)[data.positives]


def bootstrap_ci(values: np.ndarray, *, reps: int = 1000, seed: int = 0, level: float = 0.95,
                 chunk: int = 50) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users (users resampled with replacement); NaNs ignored."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(reps)
    for lo in range(0, reps, chunk):
        hi = min(lo + chunk, reps)
        means[lo:hi] = values[rng.integers(0, len(values), size=(hi - lo, len(values)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
