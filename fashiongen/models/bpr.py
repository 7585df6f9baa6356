"""BPR training triples (u, i, j), sampled as the official DVBPR code does, vectorised; and the shared base of
the factor-model baselines (`VectorScorer`, `BPRFactorModel`).

u uniform over users (not interactions); i uniform over u's training items; j uniform over all items, rejecting
only u's training items (so u's validation or test item can be a negative, as in the official code). One epoch is
as many triples as there are training interactions. Optionally (not in the paper) a share of the negatives is drawn
from the positive's own category, so that within-category style, not the category alone, separates i from j.
"""
from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashiongen.models.contract import Recommender

INIT_STD = 0.01
MAX_LOCAL_REDRAWS = 20  # same-category negative draws per triple before falling back to the whole catalogue


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


@dataclass(frozen=True)
class CategoryIndex:
    """Items grouped by category (CSR) for drawing a negative from a given item's category."""

    item_category: np.ndarray  # (N,) int64
    indptr: np.ndarray  # (C + 1,) int64
    items: np.ndarray  # (N,) int64, grouped by category

    @classmethod
    def from_categories(cls, item_category: np.ndarray) -> "CategoryIndex":
        item_category = np.asarray(item_category, np.int64)
        order = np.argsort(item_category, kind="stable")
        counts = np.bincount(item_category, minlength=int(item_category.max(initial=-1)) + 1)
        return cls(item_category, np.concatenate([[0], np.cumsum(counts)]), order.astype(np.int64))

    def draw_like(self, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each item, a uniform draw among the items of its category."""
        cats = self.item_category[items]
        start, size = self.indptr[cats], np.diff(self.indptr)[cats]
        return self.items[start + (rng.random(len(items)) * size).astype(np.int64)]


def sample_triples(train: TrainSet, n: int, rng: np.random.Generator, same_category: float = 0.0,
                   categories: CategoryIndex | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n triples (users, positives, negatives), int64 arrays. Users without training items are never drawn. With
    `same_category` > 0, that share of the negatives comes from the positive's category (`categories`); a draw that
    finds only the user's own items there falls back to the whole catalogue. At 0 the random stream is the
    official sampler's, draw for draw."""
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
    local = np.zeros(n, bool)
    if same_category > 0:
        if categories is None:
            raise ValueError("same-category negatives need the catalogue's categories")
        local = rng.random(n) < same_category
        neg[local] = categories.draw_like(pos[local], rng)
    bad = np.flatnonzero(train.contains(users, neg))
    for _ in range(MAX_LOCAL_REDRAWS):
        if not local[bad].any():
            break
        redraw = bad[local[bad]]
        neg[redraw] = categories.draw_like(pos[redraw], rng)
        bad = np.flatnonzero(train.contains(users, neg))
    local[bad] = False  # still the user's own item after the redraws: draw from the whole catalogue
    while len(bad):
        neg[bad] = rng.integers(0, train.num_items, size=len(bad))
        bad = bad[train.contains(users[bad], neg[bad])]
    return users.astype(np.int64), pos.astype(np.int64), neg.astype(np.int64)


class EpochTriples:
    """The BPR triples of each epoch (one per training interaction), drawn epoch after epoch from one stream seeded
    by `seed`. `DVBPR.fit` and every Ray Train worker draw from it, so a one-worker run trains the in-process model,
    W workers split the same epoch, and `at(epoch)` after a restart replays the stream: a resumed run draws the
    triples the uninterrupted one drew."""

    def __init__(self, train: TrainSet, seed: int, same_category: float = 0.0,
                 categories: CategoryIndex | None = None):
        self.train, self.seed, self.same_category, self.categories = train, seed, same_category, categories
        self._rng = np.random.default_rng(seed)
        self._drawn = 0  # epochs drawn from the stream so far
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def at(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, positives, negatives) of `epoch` (0-based)."""
        if epoch < self._drawn - 1:  # an earlier epoch: replay from the start
            self._rng, self._drawn = np.random.default_rng(self.seed), 0
        while self._drawn <= epoch:
            self._last = sample_triples(self.train, self.train.num_interactions, self._rng, self.same_category,
                                        self.categories)
            self._drawn += 1
        assert self._last is not None
        return self._last

    @staticmethod
    def shard(triples: tuple[np.ndarray, ...], rank: int, world: int) -> tuple[np.ndarray, ...]:
        """Rank `rank`'s contiguous share of an epoch's triples; every rank gets as many (the last world - 1 at
        most are dropped), so DDP workers take the same number of steps."""
        size = len(triples[0]) // world
        return tuple(a[rank * size:(rank + 1) * size] for a in triples)


class VectorScorer(Recommender):
    """Scores with `user_vectors() @ item_features().T`; subclasses define the vectors."""

    meta: dict[str, Any]

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> torch.Tensor:
        u = self.user_vectors()[torch.as_tensor(np.asarray(users))]
        v = self.item_features() if items is None else self.item_features()[torch.as_tensor(np.asarray(items))]
        return u @ v.T


class BPRFactorModel(VectorScorer, nn.Module):
    """A factor model trained with BPR in-process (Adam on the batch-mean BPR loss plus reg·½‖·‖² of the batch's
    rows, triples sampled as DVBPR's); subclasses allocate their parameters in `build` and give x_ui."""

    HYPER = ("k", "lr", "reg", "epochs", "batch_size", "seed")

    def __init__(self, k: int = 50, lr: float = 0.01, reg: float = 0.1, epochs: int = 20, batch_size: int = 128,
                 seed: int = 0):
        nn.Module.__init__(self)
        self.hyper = {"k": k, "lr": lr, "reg": reg, "epochs": epochs, "batch_size": batch_size, "seed": seed}
        self.config: dict[str, Any] = {}
        self.meta = {}

    @classmethod
    def from_config(cls, rec) -> "BPRFactorModel":
        return cls(rec.k, rec.baseline_lr, rec.baseline_reg, rec.baseline_epochs, rec.batch_size, rec.seed)

    @abc.abstractmethod
    def build(self, num_users: int, num_items: int) -> None:
        """Allocate the parameters (and record the sizes in self.config)."""

    @abc.abstractmethod
    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_ui (B,), ½‖rows‖² of the parameters the pairs touch (B,))."""

    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        torch.manual_seed(self.hyper["seed"])
        self.build(catalogue.num_users, catalogue.num_items)
        return self.train_bpr(catalogue, on_epoch)

    def train_bpr(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        """The BPR epochs over the catalogue's training interactions (parameters already built)."""
        h = self.hyper
        rng = np.random.default_rng(h["seed"])
        train = TrainSet.from_catalogue(catalogue)
        optimizer = torch.optim.Adam(self.parameters(), lr=h["lr"])
        history = []
        batch = h["batch_size"]
        for epoch in range(h["epochs"]):
            began = time.perf_counter()
            users, pos, neg = (torch.from_numpy(a) for a in sample_triples(train, train.num_interactions, rng))
            total = 0.0
            for lo in range(0, len(users), batch):
                u, i, j = users[lo:lo + batch], pos[lo:lo + batch], neg[lo:lo + batch]
                x_ui, reg_i = self.pair_scores(u, i)
                x_uj, reg_j = self.pair_scores(u, j)
                bpr = -F.logsigmoid(x_ui - x_uj)
                loss = (bpr + h["reg"] * (reg_i + reg_j)).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(bpr.detach().sum())
            seconds = time.perf_counter() - began
            metrics = {"epoch": epoch, "loss": total / len(users), "seconds": seconds}
            history.append(metrics)
            if on_epoch:
                on_epoch(metrics)
        return history

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": {**self.hyper, **self.config},
                "state": {k: v.detach().cpu() for k, v in self.state_dict().items()}, "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "BPRFactorModel":
        config = dict(payload["config"])
        sizes = {key: config.pop(key) for key in ("num_users", "num_items", "feature_dim") if key in config}
        model = cls(**{key: value for key, value in config.items() if key in cls.HYPER})
        model.build(**sizes)
        model.load_state_dict(payload["state"])
        model.meta = dict(payload.get("meta") or {})
        return model
