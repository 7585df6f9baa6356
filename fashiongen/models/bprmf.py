"""BPR-MF (Rendle et al. 2009): x_ui = β_i + γ_u·γ_i, trained in-process with BPR (a baseline).

The bias folds into the vectors (user [γ_u, 1], item [γ_i, β_i]), so `user_vectors() @ item_features().T` is
exactly the score and export/evaluation treat every model alike.
"""
from __future__ import annotations

import torch
from torch import nn

from fashiongen.models.bpr import INIT_STD, BPRFactorModel
from fashiongen.models.contract import register_recommender


@register_recommender
class BPRMF(BPRFactorModel):
    """x_ui = β_i + γ_u·γ_i."""

    kind = "bprmf"

    def build(self, num_users: int, num_items: int) -> None:
        k = self.hyper["k"]
        self.config = {"num_users": num_users, "num_items": num_items}
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
