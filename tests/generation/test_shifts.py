"""Expectation over small shifts (design.shift_pixels): the views, and the objective the engine climbs with them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fashiongen.config import ConfigError, DesignConfig, load_config
from fashiongen.generation.engine import EngineError, PreferenceEngine
from fashiongen.generation.shifts import shifted_views, view_count
from test_engine import ITEM_CATEGORY, RUN_DATE, TinyGenerator, TinyVisualRecommender, pairs


def test_views_are_the_image_and_four_copies_moved_with_the_edge_repeated():
    images = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).reshape(2, 1, 5, 6)
    assert shifted_views(images, 0) is images and view_count(0) == 1
    views = shifted_views(images, 2).reshape(5, 2, 1, 5, 6)
    assert view_count(2) == 5
    torch.testing.assert_close(views[0], images)
    torch.testing.assert_close(views[1][..., 2:], images[..., :-2])  # moved right
    torch.testing.assert_close(views[1][..., :2], images[..., :1].expand(-1, -1, -1, 2))  # edge repeated
    torch.testing.assert_close(views[2][..., :-2], images[..., 2:])  # left
    torch.testing.assert_close(views[3][..., 2:, :], images[..., :-2, :])  # down
    torch.testing.assert_close(views[4][..., :-2, :], images[..., 2:, :])  # up


def test_the_search_climbs_the_mean_score_over_the_shifted_views():
    ids, users, cats = pairs(6)
    settings = DesignConfig.official(restarts=4, steps=0, top_k=2, shift_pixels=1)
    start = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), settings, ITEM_CATEGORY).optimise(
        ids, users, cats, RUN_DATE).designs
    scorer = TinyVisualRecommender()
    with torch.no_grad():
        images = TinyGenerator().generate(torch.from_numpy(start["latent"]), torch.from_numpy(start["category_idx"]))
        theta = scorer.theta[torch.from_numpy(start["user_idx"])]
        per_view = (scorer.encode_images(shifted_views(images, 1)).reshape(5, len(images), -1) * theta).sum(-1)
    np.testing.assert_allclose(start["objective"] + (start["realism"] - 1.0) ** 2, per_view.mean(0).numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(start["score"], per_view[0].numpy(), rtol=1e-5, atol=1e-5)  # the design's own score

    climbed = dataclasses.replace(settings, steps=5, lr=0.1)
    shifted = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), climbed, ITEM_CATEGORY).optimise(
        ids, users, cats, RUN_DATE)
    plain = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), dataclasses.replace(climbed, shift_pixels=0),
                             ITEM_CATEGORY).optimise(ids, users, cats, RUN_DATE)
    assert not np.allclose(shifted.designs["latent"], plain.designs["latent"])
    again = PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), climbed, ITEM_CATEGORY).optimise(
        ids, users, cats, RUN_DATE)
    np.testing.assert_array_equal(again.designs["latent"], shifted.designs["latent"])  # fixed views: deterministic


def test_a_shift_off_the_frame_is_a_one_line_error():
    with pytest.raises(EngineError, match="design.shift_pixels=8") as info:
        PreferenceEngine(TinyVisualRecommender(), TinyGenerator(), DesignConfig.official(shift_pixels=8), ITEM_CATEGORY)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="design.shift_pixels"):
        load_config(overrides=["design.shift_pixels=-1"])
