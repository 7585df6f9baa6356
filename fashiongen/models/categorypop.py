"""CategoryPop: a no-learning baseline, x_ui = share of u's training items in i's category + w · (i's training count).

The bar any learned recommender must clear on catalogues where taste is mostly "which categories" plus
popularity. The popularity weight w is chosen on the validation split (full AUC) from `weights`. As vectors: user
[share_u over categories, w], item [one-hot category, count], so `user_vectors() @ item_features().T` is the score.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fashiongen.models.bpr import VectorScorer
from fashiongen.models.contract import register_recommender

WEIGHTS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@register_recommender
class CategoryPop(VectorScorer):
    """Category share plus weighted popularity; see the module docstring."""

    kind = "categorypop"

    def __init__(self, weights: tuple[float, ...] = WEIGHTS, eval_users: int = 500, seed: int = 0):
        self.weights = tuple(float(w) for w in weights)
        self.eval_users, self.seed = eval_users, seed
        self.shares = torch.zeros(0, 0)
        self.onehot = torch.zeros(0, 0)
        self.counts = torch.zeros(0)
        self.weight = 0.0
        self.meta: dict[str, Any] = {}

    @classmethod
    def from_config(cls, rec) -> "CategoryPop":
        return cls(eval_users=rec.eval_users, seed=rec.seed)

    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        from fashiongen.evaluation.auc import full_auc, held_out

        began = time.perf_counter()
        categories = len(catalogue.categories)
        train_cats = catalogue.item_category[catalogue.train_items]
        counts = np.zeros((catalogue.num_users, categories))
        np.add.at(counts, (catalogue.train_users, train_cats), 1.0)
        self.shares = torch.from_numpy(counts / np.maximum(counts.sum(1, keepdims=True), 1.0)).float()
        self.onehot = torch.nn.functional.one_hot(torch.from_numpy(catalogue.item_category), categories).float()
        self.counts = torch.bincount(torch.from_numpy(catalogue.train_items), minlength=catalogue.num_items).float()
        users = np.arange(catalogue.num_users)
        if 0 < self.eval_users < catalogue.num_users:
            users = np.sort(np.random.default_rng(self.seed).choice(catalogue.num_users, self.eval_users, False))
        validation = held_out(catalogue, "validation", users)
        aucs = {}
        for weight in self.weights:
            self.weight = weight
            aucs[weight] = float(np.nanmean(full_auc(self.score, validation)))
        self.weight = max(aucs, key=lambda w: (aucs[w], -w))  # ties: the smaller popularity weight
        self.meta = {"popularity_weight": self.weight, "validation_auc_by_weight": {str(w): a for w, a in aucs.items()}}
        metrics = {"epoch": 0, "loss": float("nan"), "seconds": time.perf_counter() - began,
                   "popularity_weight": self.weight}
        if on_epoch:
            on_epoch(metrics)
        return [metrics]

    def user_vectors(self) -> torch.Tensor:
        return torch.cat([self.shares, torch.full((len(self.shares), 1), self.weight)], dim=1)

    def item_features(self) -> torch.Tensor:
        return torch.cat([self.onehot, self.counts[:, None]], dim=1)

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": {"weights": list(self.weights), "eval_users": self.eval_users,
                                              "seed": self.seed},
                "state": {"shares": self.shares, "onehot": self.onehot, "counts": self.counts,
                          "weight": torch.tensor(self.weight)}, "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "CategoryPop":
        config, state = payload["config"], payload["state"]
        model = cls(tuple(config["weights"]), config["eval_users"], config["seed"])
        model.shares, model.onehot, model.counts = state["shares"], state["onehot"], state["counts"]
        model.weight = float(state["weight"])
        model.meta = dict(payload.get("meta") or {})
        return model
