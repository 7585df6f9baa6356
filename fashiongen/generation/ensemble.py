"""A scorer ensemble for preference maximisation: climb only what scorers trained apart agree on.

One learned scorer's maximum sits where its errors are largest (the optimiser's curse). With `ensemble` members
(visual recommenders of the same catalogue trained apart, e.g. other seeds) the design objective's score becomes

    score_ens = μ_0 + σ_0 · (mean_j ẑ_j − κ · std_j ẑ_j),   ẑ_j = (s_j − μ_j) / σ_j,   j = 0 (the climbed scorer), 1..M

where s_j is scorer j's visual score of the design for the pair (u, c), and μ_j, σ_j the mean and std of its scores
over category c's real items for that user: each scorer has its own user vectors and scale, so each is put in units
of its own spread before they are averaged, and the result is put back in the climbed scorer's units so the
realism, guard and trust-region weights keep their meaning. κ = design.ensemble_spread. With identical members the
spread is zero and score_ens = s_0. The members never include the held-out judge or the oracle.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from fashiongen.models.contract import VisualRecommender, visual_score, visual_score_matrix


class ScorerEnsemble:
    """Mean minus κ × spread of the standardised scores of the climbed scorer and its members; see the module
    docstring. `adapters[j]` maps the generator's images to member j's input."""

    def __init__(self, primary: VisualRecommender, members: Sequence[VisualRecommender],
                 adapters: Sequence[Callable[[torch.Tensor], torch.Tensor]], item_category: np.ndarray,
                 spread_weight: float, device: torch.device):
        self.scorers = [primary, *members]
        self.adapters = list(adapters)
        self.spread_weight = float(spread_weight)
        self.item_phi = [s.item_features().detach().to(device, torch.float32) for s in self.scorers]
        self.item_category = torch.as_tensor(np.asarray(item_category, np.int64), device=device)

    def standardisers(self, users: torch.Tensor, categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ, σ (S, n) of every scorer's scores over each row's category items, for that row's user."""
        keys, inverse = torch.unique(users * (int(self.item_category.max()) + 1) + categories, return_inverse=True)
        first = torch.zeros(len(keys), dtype=torch.long, device=users.device).scatter_(
            0, inverse, torch.arange(len(users), device=users.device))
        u, c = users[first], categories[first]
        member = (self.item_category[None, :] == c[:, None]).float()
        count = member.sum(dim=1).clamp(min=1)
        means, stds = [], []
        for scorer, phi in zip(self.scorers, self.item_phi):
            scores = visual_score_matrix(phi, *scorer.score_terms(u, c))
            mean = (scores * member).sum(dim=1) / count
            var = (((scores - mean[:, None]) ** 2) * member).sum(dim=1) / count
            means.append(mean[inverse]), stds.append(var.sqrt().clamp(min=1e-6)[inverse])
        return torch.stack(means), torch.stack(stds)

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Φ_j of the generator's images (n, C, H, W) under every member (differentiable)."""
        return [scorer.encode_images(adapt(images)) for scorer, adapt in zip(self.scorers[1:], self.adapters)]

    def combine(self, primary_score: torch.Tensor, member_phi: Sequence[torch.Tensor], users: torch.Tensor,
                categories: torch.Tensor) -> torch.Tensor:
        """(n,) the ensemble score of designs whose climbed-scorer score is `primary_score` (n,) and whose members'
        features are `member_phi` (`encode`)."""
        with torch.no_grad():
            mean, std = self.standardisers(users, categories)
        scores = [primary_score] + [visual_score(phi.float(), *scorer.score_terms(users, categories))
                                    for scorer, phi in zip(self.scorers[1:], member_phi)]
        z = (torch.stack(scores) - mean) / std
        return mean[0] + std[0] * (z.mean(dim=0) - self.spread_weight * z.std(dim=0, unbiased=False))
