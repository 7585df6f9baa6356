"""Inverting items into the latent space and redesigning them toward a user's taste."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashiongen.config import DesignConfig
from fashiongen.generation.engine import DesignObjective, EngineError, to_uint8_nhwc
from fashiongen.generation.invert import invert_images, redesign_items
from test_engine import TinyGenerator, TinyVisualRecommender

SETTINGS = DesignConfig.official(invert_restarts=4, invert_steps=300, invert_lr=0.05, steps=10)


def test_inversion_recovers_a_generated_images_latent():
    generator = TinyGenerator()
    true_z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)) * 0.5
    cats = np.array([0, 2, 1])
    with torch.no_grad():
        images = generator.generate(true_z, torch.from_numpy(cats))
    fit = invert_images(generator, images, cats, SETTINGS)
    assert fit.reconstruction_error.max() < 1e-4
    np.testing.assert_allclose(fit.latent, true_z.numpy(), atol=0.02)
    # uint8 NHWC input (as the catalogue stores images) gives the same latents within quantisation
    fit_u8 = invert_images(generator, to_uint8_nhwc(images), cats, SETTINGS)
    np.testing.assert_allclose(fit_u8.latent, true_z.numpy(), atol=0.05)
    assert fit.image.shape == (3, 8, 8, 1) and fit.image.dtype == np.uint8


def test_redesign_raises_the_score_and_proximity_holds_it_near_the_item():
    objective = DesignObjective(TinyVisualRecommender(), TinyGenerator(), SETTINGS)
    z_item = np.random.default_rng(0).normal(0, 0.5, (4, 4)).astype(np.float32)
    users, cats = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0])
    free = redesign_items(objective, users, z_item, cats, DesignConfig.official(steps=10, proximity=0.0))
    assert free.image.shape == (4, 11, 8, 8, 1) and free.score.shape == (4, 11)
    assert (free.score[:, -1] - 1.0 * (free.realism[:, -1] - 1) ** 2
            > free.score[:, 0] - (free.realism[:, 0] - 1) ** 2).all()
    np.testing.assert_allclose(free.latent[:, 0], z_item)
    assert free.distance[:, 0].max() == 0 and free.distance[:, -1].min() > 0.05
    held = redesign_items(objective, users, z_item, cats, DesignConfig.official(steps=10, proximity=100.0))
    assert held.distance[:, -1].max() < free.distance[:, -1].min()


def test_bad_input():
    generator = TinyGenerator()
    with pytest.raises(EngineError, match="category index 5"):
        invert_images(generator, torch.zeros(1, 1, 8, 8), np.array([5]), SETTINGS)
    objective = DesignObjective(TinyVisualRecommender(), generator, SETTINGS)
    with pytest.raises(EngineError, match="unknown user index 40"):
        redesign_items(objective, np.array([40]), np.zeros((1, 4)), np.array([0]), SETTINGS)
