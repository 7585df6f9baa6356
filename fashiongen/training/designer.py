"""Train the amortised designer on the lake's recommender and generator (`fashiongen train-designer`).

In process for now (the pure-torch step of `designer_steps`, on this machine's CPU or GPU); users are split by a
digest of their id: `designer.validation` of them are never trained on and give the reported objective, beside
that of the engine's own prior starts (the search's z0) on the same pairs. Writes `LakePaths.designer_model()`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from fashiongen.config import Config
from fashiongen.lake.layout import id_key
from fashiongen.lake.paths import LakePaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesignerResult:
    model_uri: str
    model_version: str
    train_users: int
    validation_users: int
    validation_objective: float  # the designer's latents on users it never saw
    prior_objective: float  # the search's z0 (prior draws) on the same pairs
    history: list[dict]


def split_users(user_ids: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) user indices: validation = ids whose digest falls in the first `share` of the range."""
    bucket = np.array([int(id_key("designer-split", str(u))[:8], 16) / 16 ** 8 for u in user_ids])
    return np.flatnonzero(bucket >= share), np.flatnonzero(bucket < share)


def train_designer_on_lake(cfg: Config) -> DesignerResult:
    from fashiongen.data.contract import load_catalogue
    from fashiongen.generation.engine import PreferenceEngine, category_mapping, initial_latents
    from fashiongen.generation.job import check_models
    from fashiongen.models.contract import load_generator, load_recommender
    from fashiongen.models.designer import AmortisedDesigner
    from fashiongen.training.classifier import ensure_classifier
    from fashiongen.training.designer_steps import designer_latents, mean_objective, pair_grid, train_designer

    paths = LakePaths.of(cfg)
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    recommender, generator = load_recommender(rec_uri), load_generator(gen_uri)
    catalogue = load_catalogue(cfg.data.catalogue_uri, with_images=False)
    check_models(recommender, generator, catalogue, rec_uri, gen_uri)
    settings = replace(cfg.design, mode="optimise", warm_start=0)
    guard = ensure_classifier(cfg, role="guard") if settings.category_guard else None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = PreferenceEngine(recommender, generator, settings,
                              category_mapping(catalogue.categories, generator.categories)[catalogue.item_category],
                              device=device, guard=guard,
                              guard_class=category_mapping(generator.categories, catalogue.categories))
    train, validation = split_users(catalogue.user_ids, cfg.designer.validation)
    torch.manual_seed(cfg.designer.seed)
    designer = AmortisedDesigner(recommender.user_vectors().shape[1], len(generator.categories),
                                 int(generator.latent_dim), settings.restarts, cfg.designer.hidden)
    designer.bind(recommender, generator)
    history = train_designer(engine, designer, train, cfg.designer, validation if len(validation) else None,
                             on_epoch=lambda m: log.info("designer epoch %d: objective %.3f (validation %s)",
                                                         m["epoch"], m["objective"], m.get("val_objective")))
    users, cats = pair_grid(validation if len(validation) else train[:1], len(generator.categories))
    learned = mean_objective(engine, designer_latents(engine, designer, users, cats), users, cats)
    prior = torch.stack([initial_latents(f"{u}/{c}", "2000-01-01", settings.restarts, int(generator.latent_dim),
                                         settings.init_std, settings.truncation) for u, c in zip(users, cats)])
    baseline = mean_objective(engine, prior, users, cats)
    uri = paths.designer_model()
    version = designer.save(uri)
    return DesignerResult(uri, version, len(train), len(validation), learned, baseline, history)
