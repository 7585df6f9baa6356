"""The trust region: zero inside the real support of a category, growing outside it, per category; and the step
bound of a redesign (design.max_step) in latent space."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fashiongen.config import ConfigError, DesignConfig, load_config
from fashiongen.generation.engine import EngineError, PreferenceEngine
from fashiongen.generation.trust_region import TrustRegion, bounded_step
from test_engine import ITEM_CATEGORY, RUN_DATE, TinyGenerator, TinyVisualRecommender, catalogue_images, pairs


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


def test_bounded_step_projects_only_the_rows_outside_their_ball():
    anchor = torch.zeros(3, 2)
    z = torch.tensor([[3.0, 4.0], [0.3, 0.4], [30.0, 40.0]])
    out = bounded_step(z, anchor, torch.tensor([1.0, 1.0, float("inf")]))
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8], [0.3, 0.4], [30.0, 40.0]]))


@pytest.mark.parametrize("extra", [{"mode": "from_items"}, {"warm_start": 2, "restarts": 3},
                                   {"mode": "from_items", "bounded_latent": True}])
def test_the_step_bound_holds_for_every_restart_that_redraws_an_item(extra):
    settings = DesignConfig.official(steps=8, top_k=2, lr=0.5, invert_steps=10, invert_restarts=1, proximity=0.0,
                                     **extra)
    ids, users, cats = pairs(4)

    def run(**change):
        return PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), dataclasses.replace(settings, **change),
                                ITEM_CATEGORY, item_images=catalogue_images()).optimise(ids, users, cats, RUN_DATE)

    start, free, held = run(steps=0, top_k=settings.restarts if "warm_start" in extra else 2), run(), \
        run(max_step=0.1)
    anchors = {(p, int(i)): z for p, i, z in zip(start.designs["pair_id"], start.designs["source_item_idx"],
                                                 start.designs["latent"]) if i >= 0}

    def steps(result):
        return np.array([np.linalg.norm(z - anchors[p, int(i)]) / np.linalg.norm(anchors[p, int(i)])
                         for p, i, z in zip(result.designs["pair_id"], result.designs["source_item_idx"],
                                            result.designs["latent"]) if i >= 0])

    assert steps(held).size and steps(held).max() <= 0.1 + 1e-4
    assert steps(free).max() > 0.2  # without the bound the same search moves further


def test_a_step_bound_without_a_real_start_is_a_one_line_error():
    with pytest.raises(EngineError, match="design.max_step=0.5.*mode=from_items"):
        PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig.official(max_step=0.5), ITEM_CATEGORY)
    with pytest.raises(ConfigError, match="design.max_step"):
        load_config(overrides=["design.max_step=-1"])
