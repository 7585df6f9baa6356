"""The trust region of preference maximisation: how far Φ(design) strays from the real garments of its category.

Φ is standardised per category (each dimension by the std of the category's real items), a design's distance is to
its nearest real item of the category, in units of the radius r_c: a quantile of the real items' own
nearest-neighbour distances (each item left out of its own search). The penalty (max(0, d / r_c − 1))² is zero
inside the real support and grows outside it, so a search that climbs the scorer past every garment pays for it.
It uses what the product has (the recommender's item features), never the simulated shoppers' attributes.
`bounded_step` is its latent-space sibling (design.max_step): a redesign stays within a ball around the item's latent.
"""
from __future__ import annotations

import numpy as np
import torch

MAX_REFERENCE = 2048  # real items kept per category (a seeded sample beyond that): distances stay cheap per step


class TrustRegion:
    """Nearest-real-item distances of Φ vectors, per category; see the module docstring."""

    def __init__(self, item_features: torch.Tensor, item_category: np.ndarray, num_categories: int,
                 quantile: float = 0.9, seed: int = 0):
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"design.trust_quantile={quantile}: use a quantile in (0, 1]")
        features = item_features.detach().float()
        rng = np.random.default_rng(seed)
        self.mean: list[torch.Tensor | None] = []
        self.scale: list[torch.Tensor | None] = []
        self.reference: list[torch.Tensor | None] = []
        self.radius: list[float] = []
        for c in range(num_categories):
            members = np.flatnonzero(np.asarray(item_category) == c)
            if len(members) < 2:  # no support to measure: the category is unconstrained
                self.mean.append(None), self.scale.append(None), self.reference.append(None)
                self.radius.append(float("inf"))
                continue
            if len(members) > MAX_REFERENCE:
                members = np.sort(rng.choice(members, MAX_REFERENCE, replace=False))
            phi = features[torch.as_tensor(members, device=features.device)]
            mean, scale = phi.mean(0), 1.0 / (phi.std(0, unbiased=False) + 1e-6)
            z = (phi - mean) * scale
            own = torch.cdist(z, z).fill_diagonal_(float("inf")).min(dim=1).values
            self.mean.append(mean), self.scale.append(scale), self.reference.append(z)
            self.radius.append(max(float(torch.quantile(own, quantile)), 1e-6))

    def distance(self, phi: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """(n,) distance of each Φ (n, K) to the nearest real item of its category, in units of the category's
        radius (≤ 1: inside the real support); differentiable in Φ."""
        out = phi.new_zeros(len(phi))
        for c in torch.unique(categories).tolist():
            if self.reference[c] is None:
                continue
            rows = categories == c
            z = (phi[rows] - self.mean[c]) * self.scale[c]
            out = out.index_put((rows.nonzero()[:, 0],), torch.cdist(z, self.reference[c]).min(dim=1).values
                                / self.radius[c])
        return out

    def penalty(self, phi: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """(n,) (max(0, d − 1))²: zero inside the real support, growing outside."""
        return torch.relu(self.distance(phi, categories) - 1.0) ** 2


def bounded_step(z: torch.Tensor, anchor: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Each row of z (n, L) moved back onto the ball ‖z − anchor‖ ≤ radius (n,) along its step (inf = unbounded)."""
    step = z - anchor
    scale = (radius[:, None] / step.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)
    return anchor + step * scale
