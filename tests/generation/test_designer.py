"""The amortised designer (#15) with the engine's tiny models: it learns, its modes, determinism, distinct designs,
its checkpoint and its compatibility check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashiongen.config import DesignConfig, DesignerConfig
from fashiongen.generation.engine import EngineError, PreferenceEngine, initial_latents
from fashiongen.models.contract import CheckpointError, save_checkpoint
from fashiongen.models.designer import AmortisedDesigner, DesignerError, load_designer
from fashiongen.training.designer_steps import (designer_latents, mean_objective, pair_grid,
                                                train_designer)
from test_engine import ITEM_CATEGORY, RUN_DATE, TinyGenerator, TinyVisualRecommender, pairs

torch.set_num_threads(1)
RESTARTS = 4


def engine(designer=None, **overrides) -> PreferenceEngine:
    settings = DesignConfig.official(**{"restarts": RESTARTS, "steps": 6, "top_k": 3, **overrides})
    return PreferenceEngine(TinyVisualRecommender(num_users=12), TinyGenerator(), settings, ITEM_CATEGORY,
                            designer=designer)


def fresh_designer(seed: int = 0) -> AmortisedDesigner:
    torch.manual_seed(seed)
    designer = AmortisedDesigner(vector_dim=5, num_categories=3, latent_dim=4, restarts=RESTARTS, hidden=32)
    designer.bind(TinyVisualRecommender(num_users=12), TinyGenerator())
    return designer


@pytest.fixture(scope="module")
def trained() -> AmortisedDesigner:
    designer = fresh_designer()
    train_designer(engine(), designer, np.arange(8), DesignerConfig(epochs=60, batch_pairs=8, lr=3e-3))
    return designer


def test_a_trained_designer_beats_prior_latents_for_users_it_never_saw(trained):
    search = engine()
    users, cats = pair_grid(np.arange(8, 12), 3)  # held-out users
    prior = torch.stack([initial_latents(f"p{i}", RUN_DATE, RESTARTS, 4, 0.5) for i in range(len(users))])
    learned = mean_objective(search, designer_latents(search, trained, users, cats), users, cats)
    assert learned > mean_objective(search, prior, users, cats) + 0.05
    untrained = mean_objective(search, designer_latents(search, fresh_designer(), users, cats), users, cats)
    assert learned > untrained


def test_amortised_is_refine_with_zero_steps_and_refining_climbs(trained):
    ids, users, cats = pairs(6)
    one_pass = engine(trained, mode="amortised").optimise(ids, users, cats, RUN_DATE)
    zero = engine(trained, mode="amortised+refine", refine_steps=0).optimise(ids, users, cats, RUN_DATE)
    for key in ("latent", "score", "objective", "image"):
        np.testing.assert_array_equal(one_pass.designs[key], zero.designs[key])
    refined = engine(trained, mode="amortised+refine", refine_steps=5).optimise(ids, users, cats, RUN_DATE)
    assert refined.designs["objective"].mean() > one_pass.designs["objective"].mean()
    assert (one_pass.pairs["steps_run"] == 0).all() and (refined.pairs["steps_run"] == 5).all()


def test_a_pairs_designs_are_deterministic_and_distinct(trained):
    ids, users, cats = pairs(6)
    first = engine(trained, mode="amortised", batch_pairs=64).optimise(ids, users, cats, RUN_DATE)
    again = engine(trained, mode="amortised", batch_pairs=2).optimise(ids, users, cats, RUN_DATE)
    np.testing.assert_allclose(first.designs["latent"], again.designs["latent"], atol=1e-6)
    latents = first.designs["latent"].reshape(6, 3, 4)
    gaps = np.linalg.norm(latents[:, :, None] - latents[:, None], axis=3)[:, ~np.eye(3, dtype=bool)]
    assert gaps.min() > 1e-3  # the R designs of a pair differ


def test_modes_need_a_compatible_designer(trained, tmp_path):
    with pytest.raises(EngineError, match="needs a trained designer"):
        engine(mode="amortised")
    other = fresh_designer()
    other.meta["recommender_space"] = "another-space"
    with pytest.raises(DesignerError, match="another recommender space"):
        engine(other, mode="amortised")
    uri = str(tmp_path / "designer.pt")
    version = trained.save(uri)
    loaded = load_designer(uri)
    assert loaded.model_version == version and loaded.meta == trained.meta
    ids, users, cats = pairs(3)
    np.testing.assert_array_equal(engine(loaded, mode="amortised").optimise(ids, users, cats, RUN_DATE).designs["latent"],
                                  engine(trained, mode="amortised").optimise(ids, users, cats, RUN_DATE).designs["latent"])
    save_checkpoint(str(tmp_path / "gan.pt"), {"kind": "tiny_gan", "config": {}, "state": {}, "meta": {}})
    with pytest.raises(DesignerError, match="not a designer"):
        load_designer(str(tmp_path / "gan.pt"))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_designer(str(tmp_path / "missing.pt"))
