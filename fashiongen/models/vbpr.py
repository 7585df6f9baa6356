"""VBPR (He & McAuley 2016): x_ui = β_i + β'·f_i + γ_u·γ_i + θ_u·(E f_i), f_i a fixed visual feature (a baseline).

Here f_i is the penultimate layer of fashiongen.models.classifier.CategoryClassifier trained on the catalogue's
images and categories only: it never sees interactions (the role of the paper's pretrained ImageNet CNN, which
cannot be downloaded here). Features are scaled to unit mean L2 norm. Biases fold into the vectors (user
[γ_u, θ_u, 1], item [γ_i, E f_i, β_i + β'·f_i]), so `user_vectors() @ item_features().T` is exactly the score.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fashiongen.models.bpr import INIT_STD, BPRFactorModel
from fashiongen.models.contract import register_recommender


@register_recommender
class VBPR(BPRFactorModel):
    """x_ui = β_i + β'·f_i + γ_u·γ_i + θ_u·(E f_i) with fixed visual features f (N, F); k splits evenly into γ and θ."""

    kind = "vbpr"
    needs_images = True
    HYPER = (*BPRFactorModel.HYPER, "classifier_epochs")

    def __init__(self, k: int = 50, lr: float = 0.01, reg: float = 0.1, epochs: int = 20, batch_size: int = 128,
                 seed: int = 0, classifier_epochs: int = 2):
        super().__init__(k, lr, reg, epochs, batch_size, seed)
        self.hyper["classifier_epochs"] = classifier_epochs

    @classmethod
    def from_config(cls, rec) -> "VBPR":
        return cls(rec.k, rec.baseline_lr, rec.baseline_reg, rec.baseline_epochs, rec.batch_size, rec.seed,
                   rec.classifier_epochs)

    def build(self, num_users: int, num_items: int, feature_dim: int = 128) -> None:
        k = self.hyper["k"]
        k_latent, k_visual = k - k // 2, k // 2
        self.config = {"num_users": num_users, "num_items": num_items, "feature_dim": feature_dim}
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

    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        """Train the category classifier on the catalogue's images (no interactions), take its features, then BPR."""
        from fashiongen.models.classifier import train_classifier

        classifier = train_classifier(catalogue.images, catalogue.item_category,
                                      epochs=self.hyper["classifier_epochs"], seed=self.hyper["seed"])
        features = classifier.predict_features(catalogue.images)
        torch.manual_seed(self.hyper["seed"])
        self.build(catalogue.num_users, catalogue.num_items, feature_dim=features.shape[1])
        self.set_features(features)
        self.meta["visual_features"] = "CategoryClassifier penultimate layer (catalogue images and categories only)"
        return self.train_bpr(catalogue, on_epoch)

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
