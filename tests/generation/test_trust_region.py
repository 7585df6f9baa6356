"""The trust region: zero inside the real support of a category, growing outside it, per category."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashiongen.generation.trust_region import TrustRegion


def _region(quantile: float = 0.9) -> tuple[TrustRegion, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    phi = torch.from_numpy(np.r_[rng.normal(0, 1, (200, 4)), rng.normal(5, 2, (200, 4))].astype(np.float32))
    category = np.repeat([0, 1], 200)
    return TrustRegion(phi, category, 3, quantile), phi, category  # category 2 has no items


def test_zero_on_and_between_real_items_growing_outside():
    region, phi, category = _region()
    cats = torch.as_tensor(category)
    assert torch.all(region.penalty(phi, cats) == 0)  # every real item is inside its own category's support
    midpoints = (phi[:199] + phi[1:200]) / 2
    assert (region.penalty(midpoints, cats[:199]) == 0).float().mean() > 0.5
    centre = phi[:200].mean(0)
    steps = [region.penalty((centre + t * torch.ones(4))[None], torch.tensor([0])).item() for t in (2, 4, 8, 16)]
    assert steps[0] < steps[1] < steps[2] < steps[3] and steps[1] > 0  # beyond the garments it keeps growing


def test_measured_per_category_and_differentiable():
    region, phi, _ = _region()
    far_in_0 = phi[200:260]  # category 1's garments are outside category 0's support
    assert region.penalty(far_in_0, torch.zeros(60, dtype=torch.long)).mean() > 0
    assert torch.all(region.penalty(far_in_0, torch.ones(60, dtype=torch.long)) == 0)
    assert torch.all(region.penalty(torch.full((2, 4), 99.0), torch.tensor([2, 2])) == 0)  # no items: no region
    x = (phi[:1] + 10).requires_grad_(True)
    region.penalty(x, torch.tensor([0])).sum().backward()
    assert torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0


def test_a_tighter_quantile_shrinks_the_region():
    loose, phi, _ = _region(0.99)
    tight, _, _ = _region(0.5)
    probe = phi[:200].mean(0) + 3 * torch.ones(1, 4)
    assert tight.penalty(probe, torch.tensor([0])) > loose.penalty(probe, torch.tensor([0]))
    with pytest.raises(ValueError, match="design.trust_quantile"):
        TrustRegion(phi, np.zeros(len(phi), np.int64), 1, 0.0)
