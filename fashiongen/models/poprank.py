"""PopRank: x_ui = number of training interactions of i, the same for every user (a baseline)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from fashiongen.models.bpr import VectorScorer
from fashiongen.models.contract import register_recommender


@register_recommender
class PopRank(VectorScorer):
    """Rank items by training popularity; no personalisation."""

    kind = "poprank"

    def __init__(self):
        self.counts = torch.zeros(0)
        self.num_users = 0
        self.meta = {}

    @classmethod
    def from_config(cls, rec) -> "PopRank":
        return cls()

    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        began = time.perf_counter()
        self.num_users = catalogue.num_users
        self.counts = torch.bincount(torch.from_numpy(catalogue.train_items), minlength=catalogue.num_items).float()
        metrics = {"epoch": 0, "loss": float("nan"), "seconds": time.perf_counter() - began}
        if on_epoch:
            on_epoch(metrics)
        return [metrics]

    def user_vectors(self) -> torch.Tensor:
        return torch.ones(self.num_users, 1)

    def item_features(self) -> torch.Tensor:
        return self.counts[:, None]

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": {"num_users": self.num_users, "num_items": len(self.counts)},
                "state": {"counts": self.counts}, "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "PopRank":
        model = cls()
        model.num_users = int(payload["config"]["num_users"])
        model.counts = payload["state"]["counts"].float()
        model.meta = dict(payload.get("meta") or {})
        return model
