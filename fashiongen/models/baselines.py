"""Baselines in the DVBPR harness: PopRank, BPR-MF and VBPR, each a `Recommender` scoring x_ui = user_vector · item_vector.

- PopRank: x_ui = number of training interactions of i (the same for every user).
- BPR-MF (Rendle et al. 2009): x_ui = β_i + γ_u·γ_i.
- VBPR (He & McAuley 2016): x_ui = β_i + β'·f_i + γ_u·γ_i + θ_u·(E f_i), f_i a fixed visual feature. Here f_i is the
  penultimate layer of fashiongen.models.classifier.CategoryClassifier trained on the catalogue's images and
  categories only: it never sees interactions (the role of the paper's pretrained ImageNet CNN, which cannot be
  downloaded here). Features are scaled to unit mean L2 norm.

Biases fold into the vectors (user [γ_u, θ_u, 1], item [γ_i, E f_i, β_i + β'·f_i]), so `user_vectors() @
item_features().T` is exactly the score and export/evaluation treat every model alike. BPR-MF and VBPR train with
Adam(recommender.baseline_lr) on the batch-mean BPR loss plus recommender.baseline_reg · ½‖·‖² of the batch's rows,
on triples sampled as DVBPR's (fashiongen.models.bpr), for recommender.baseline_epochs epochs.
"""
from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashiongen.models.bpr import TrainSet, sample_triples
from fashiongen.models.contract import Recommender, register_recommender

INIT_STD = 0.01


class _VectorScorer(Recommender):
    """Scores with `user_vectors() @ item_features().T`; subclasses define the vectors."""

    meta: dict[str, Any]

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> torch.Tensor:
        u = self.user_vectors()[torch.as_tensor(np.asarray(users))]
        v = self.item_features() if items is None else self.item_features()[torch.as_tensor(np.asarray(items))]
        return u @ v.T


@register_recommender
class PopRank(_VectorScorer):
    """Rank items by training popularity; no personalisation."""

    kind = "poprank"

    def __init__(self, num_users: int, num_items: int):
        self.counts = torch.zeros(num_items)
        self.num_users = num_users
        self.meta = {}

    def fit(self, catalogue, cfg, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        began = time.perf_counter()
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
        model = cls(**payload["config"])
        model.counts = payload["state"]["counts"].float()
        model.meta = dict(payload.get("meta") or {})
        return model


class _BPRFactorModel(_VectorScorer, nn.Module):
    """A factor model trained with BPR in-process; subclasses give x_ui for index tensors and the batch's rows."""

    def __init__(self):
        nn.Module.__init__(self)
        self.meta = {}

    @abc.abstractmethod
    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_ui (B,), ½‖rows‖² of the parameters the pairs touch (B,))."""

    def fit(self, catalogue, cfg, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        rec = cfg.recommender
        torch.manual_seed(rec.seed)
        rng = np.random.default_rng(rec.seed)
        train = TrainSet.from_catalogue(catalogue)
        optimizer = torch.optim.Adam(self.parameters(), lr=rec.baseline_lr)
        history = []
        for epoch in range(rec.baseline_epochs):
            began = time.perf_counter()
            users, pos, neg = (torch.from_numpy(a) for a in sample_triples(train, train.num_interactions, rng))
            total = 0.0
            for lo in range(0, len(users), rec.batch_size):
                u, i, j = users[lo:lo + rec.batch_size], pos[lo:lo + rec.batch_size], neg[lo:lo + rec.batch_size]
                x_ui, reg_i = self.pair_scores(u, i)
                x_uj, reg_j = self.pair_scores(u, j)
                bpr = -F.logsigmoid(x_ui - x_uj)
                loss = (bpr + rec.baseline_reg * (reg_i + reg_j)).mean()
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
        return {"kind": self.kind, "config": dict(self.config),
                "state": {k: v.detach().cpu() for k, v in self.state_dict().items()}, "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "_BPRFactorModel":
        model = cls(**payload["config"])
        model.load_state_dict(payload["state"])
        model.meta = dict(payload.get("meta") or {})
        return model


@register_recommender
class BPRMF(_BPRFactorModel):
    """x_ui = β_i + γ_u·γ_i."""

    kind = "bprmf"

    def __init__(self, num_users: int, num_items: int, k: int = 50):
        super().__init__()
        self.config = {"num_users": num_users, "num_items": num_items, "k": k}
        self.gamma_user = nn.Parameter(torch.randn(num_users, k) * INIT_STD)
        self.gamma_item = nn.Parameter(torch.randn(num_items, k) * INIT_STD)
        self.beta_item = nn.Parameter(torch.zeros(num_items))

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gu, gi, b = self.gamma_user[users], self.gamma_item[items], self.beta_item[items]
        reg = 0.5 * (gu.pow(2).sum(1) + gi.pow(2).sum(1) + b.pow(2))
        return b + (gu * gi).sum(1), reg

    @torch.no_grad()
    def user_vectors(self) -> torch.Tensor:
        return torch.cat([self.gamma_user, torch.ones(len(self.gamma_user), 1)], dim=1)

    @torch.no_grad()
    def item_features(self) -> torch.Tensor:
        return torch.cat([self.gamma_item, self.beta_item[:, None]], dim=1)


@register_recommender
class VBPR(_BPRFactorModel):
    """x_ui = β_i + β'·f_i + γ_u·γ_i + θ_u·(E f_i) with fixed visual features f (N, F); k splits evenly into γ and θ."""

    kind = "vbpr"

    def __init__(self, num_users: int, num_items: int, k: int = 50, feature_dim: int = 128):
        super().__init__()
        k_latent, k_visual = k - k // 2, k // 2
        self.config = {"num_users": num_users, "num_items": num_items, "k": k, "feature_dim": feature_dim}
        self.gamma_user = nn.Parameter(torch.randn(num_users, k_latent) * INIT_STD)
        self.gamma_item = nn.Parameter(torch.randn(num_items, k_latent) * INIT_STD)
        self.theta_user = nn.Parameter(torch.randn(num_users, k_visual) * INIT_STD)
        self.embedding = nn.Parameter(torch.randn(feature_dim, k_visual) * INIT_STD)  # E
        self.beta_item = nn.Parameter(torch.zeros(num_items))
        self.beta_visual = nn.Parameter(torch.zeros(feature_dim))  # β'
        self.register_buffer("features", torch.zeros(num_items, feature_dim))

    def set_features(self, features: torch.Tensor) -> None:
        """Fixed visual features f (N, F), scaled to unit mean L2 norm."""
        features = features.float()
        self.features.copy_(features / features.norm(dim=1).mean().clamp_min(1e-12))

    def fit(self, catalogue, cfg, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        """Train the category classifier on the catalogue's images (no interactions), take its features, then BPR."""
        from fashiongen.models.classifier import train_classifier

        rec = cfg.recommender
        classifier = train_classifier(catalogue.images, catalogue.item_category, epochs=rec.classifier_epochs,
                                      seed=rec.seed)
        self.set_features(classifier.predict_features(catalogue.images))
        self.meta["visual_features"] = "CategoryClassifier penultimate layer (catalogue images and categories only)"
        return super().fit(catalogue, cfg, on_epoch)

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gu, gi, tu, b = self.gamma_user[users], self.gamma_item[items], self.theta_user[users], self.beta_item[items]
        f = self.features[items]
        x = b + f @ self.beta_visual + (gu * gi).sum(1) + (tu * (f @ self.embedding)).sum(1)
        reg = 0.5 * (gu.pow(2).sum(1) + gi.pow(2).sum(1) + tu.pow(2).sum(1) + b.pow(2))
        reg = reg + 0.5 * (self.embedding.pow(2).sum() + self.beta_visual.pow(2).sum()) / len(users)
        return x, reg

    @torch.no_grad()
    def user_vectors(self) -> torch.Tensor:
        return torch.cat([self.gamma_user, self.theta_user, torch.ones(len(self.gamma_user), 1)], dim=1)

    @torch.no_grad()
    def item_features(self) -> torch.Tensor:
        bias = self.beta_item + self.features @ self.beta_visual
        return torch.cat([self.gamma_item, self.features @ self.embedding, bias[:, None]], dim=1)


BASELINES: dict[str, type[Recommender]] = {"poprank": PopRank, "bprmf": BPRMF, "vbpr": VBPR}


def build_baseline(kind: str, catalogue, rec) -> Recommender:
    """A fresh baseline shaped for a Catalogue and a RecommenderConfig."""
    if kind == "poprank":
        return PopRank(catalogue.num_users, catalogue.num_items)
    if kind == "bprmf":
        return BPRMF(catalogue.num_users, catalogue.num_items, rec.k)
    if kind == "vbpr":
        return VBPR(catalogue.num_users, catalogue.num_items, rec.k)
    raise ValueError(f"{kind!r} is not a baseline ({sorted(BASELINES)})")
