"""Simulated shoppers over an image catalogue, with a hidden ground truth (see oracle.py for the utility).

Generative process (all numpy, vectorised over users; deterministic under `seed`):

1. Each user draws category affinities a_u ~ Dirichlet(category_concentration), a taste over the F oracle
   features (`simulation.taste`: sweet_spot draws ideal quantile levels and attribute weights, linear a style
   vector s_u ~ N(0, I/F); see oracle.py), and an activity
   n_u = min_interactions + floor(LogNormal(mean mean_extra_interactions, sigma activity_sigma)).
2. Each item has a hidden popularity pop_i = -popularity_strength * log(rank_i) (Zipf-like; ranks are a
   random permutation), centred.
3. Stage one: the user's n_u picks are spread over categories ~ Multinomial(n_u, a_u) (capped by the
   number of items in a category). Stage two: within category c the user picks k_uc distinct items by
   Gumbel-top-k on (style_strength * style(u, i) + pop_i) / temperature, i.e. sampling without
   replacement from the within-category softmax (computed in its exponential-race form: the k largest
   p_i / E_i with E_i ~ Exp(1)), in batches of users.
4. Timestamps: each user starts on a random day of 2024 and picks follow in a random order, separated
   by exponential gaps (mean 3 days).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fashiongen.config import SimulationConfig
from fashiongen.data.contract import CatalogueError
from fashiongen.data.oracle import (ORACLE_VERSIONS, GroundTruth, category_feature_stats, category_quantiles,
                                    draw_sweet_spots, feature_names, oracle_features)

USER_BATCH = 512  # users per sampling batch: bounds memory to a few (USER_BATCH x items) float32 matrices
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY_MS = 86_400_000


@dataclass
class Simulation:
    """Simulated interactions (contract schema) and the truth that generated them."""

    interactions: pa.Table
    truth: GroundTruth
    params: dict


def user_ids_for(num_users: int) -> np.ndarray:
    width = max(6, len(str(num_users - 1)))
    return np.char.add("u", np.char.zfill(np.arange(num_users).astype(str), width))


def _activity(rng: np.random.Generator, cfg: SimulationConfig, num_users: int, cap: int) -> np.ndarray:
    mu = np.log(cfg.mean_extra_interactions) - cfg.activity_sigma**2 / 2  # mean of the log-normal = mean_extra
    extra = np.floor(rng.lognormal(mu, cfg.activity_sigma, num_users)).astype(np.int64)
    return np.minimum(cfg.min_interactions + extra, cap)


def _category_counts(rng: np.random.Generator, activity: np.ndarray, affinity: np.ndarray,
                     category_size: np.ndarray) -> np.ndarray:
    """Multinomial(n_u, a_u) per user; picks beyond a category's size go to categories with room left."""
    counts = rng.multinomial(activity, affinity)
    while True:
        excess = np.maximum(counts - category_size, 0).sum(axis=1)
        if not excess.any():
            return counts
        counts = np.minimum(counts, category_size)
        rows = np.flatnonzero(excess)
        room = affinity[rows] * (counts[rows] < category_size) + 1e-12 * (counts[rows] < category_size)
        counts[rows] += rng.multinomial(excess[rows], room / room.sum(axis=1, keepdims=True))


def simulate_shoppers(images: np.ndarray, item_ids: np.ndarray, item_category: np.ndarray, categories: list[str],
                      cfg: SimulationConfig) -> Simulation:
    """Interactions of cfg.num_users simulated users over the given items (uint8 NHWC images)."""
    num_items, num_c = len(item_ids), len(categories)
    if cfg.min_interactions < 3:
        raise CatalogueError(f"simulation.min_interactions={cfg.min_interactions}: leave-one-out needs at least 3")
    if cfg.taste not in ORACLE_VERSIONS:
        raise CatalogueError(f"simulation.taste={cfg.taste!r}: use one of {sorted(ORACLE_VERSIONS)}")
    if cfg.num_users < 1 or cfg.temperature <= 0 or cfg.category_concentration <= 0:
        raise CatalogueError("simulation.num_users must be >= 1 and simulation.temperature and "
                             "simulation.category_concentration > 0")
    category_size = np.bincount(item_category, minlength=num_c)
    if (category_size == 0).any():
        raise CatalogueError(f"category {categories[int(np.argmin(category_size))]!r} has no items to simulate over")
    if num_items < 2 * cfg.min_interactions:
        raise CatalogueError(f"{num_items} items are too few to simulate {cfg.min_interactions} interactions per "
                             f"user: import at least {2 * cfg.min_interactions} items (data.max_items)")
    rng = np.random.default_rng(cfg.seed)
    num_users, num_f = cfg.num_users, len(feature_names(cfg.taste))

    features = oracle_features(images, cfg.taste)
    mean, std = category_feature_stats(features, item_category, num_c)
    rank = np.empty(num_items, np.int64)
    rank[rng.permutation(num_items)] = np.arange(1, num_items + 1)
    popularity = (-cfg.popularity_strength * np.log(rank)).astype(np.float32)
    popularity -= popularity.mean()

    affinity = rng.dirichlet(np.full(num_c, cfg.category_concentration), num_users)
    affinity = np.maximum(affinity, 1e-9)
    affinity /= affinity.sum(axis=1, keepdims=True)
    if cfg.taste == "linear":
        taste = {"style": (rng.standard_normal((num_users, num_f)) / np.sqrt(num_f)).astype(np.float32)}
    else:
        levels, weights = draw_sweet_spots(rng, num_users, num_f)
        taste = {"ideal_level": levels, "weight": weights,
                 "feature_quantiles": category_quantiles(features, item_category, num_c)}
    truth = GroundTruth(
        user_ids=user_ids_for(num_users), item_ids=np.asarray(item_ids, dtype=str), categories=list(categories),
        affinity=affinity, log_normaliser=np.zeros((num_users, num_c), np.float32),
        item_category=np.asarray(item_category, np.int64), item_features=features, popularity=popularity,
        feature_mean=mean, feature_std=std, style_strength=cfg.style_strength, temperature=cfg.temperature,
        params={"simulator": "two-stage category then Gumbel-top-k", **dataclasses.asdict(cfg)}, taste=cfg.taste,
        **taste)
    activity = _activity(rng, cfg, num_users, cap=num_items // 2)
    counts = _category_counts(rng, activity, affinity, category_size)

    order = np.argsort(item_category, kind="stable")  # items grouped by category
    bounds = np.concatenate([[0], np.cumsum(category_size)])
    z_sorted, pop_sorted, cat_sorted = truth.item_z[order], popularity[order] / cfg.temperature, truth.item_category[order]
    scale = cfg.style_strength / cfg.temperature
    log_norm = truth.log_normaliser  # filled in below, category by category
    picked_users, picked_items = [], []
    for lo in range(0, num_users, USER_BATCH):
        users = np.arange(lo, min(lo + USER_BATCH, num_users))
        logits = scale * truth.style_scores(users, z_sorted, cat_sorted) + pop_sorted
        for c in range(num_c):
            seg = logits[:, bounds[c]:bounds[c + 1]]
            top = seg.max(axis=1, keepdims=True)
            p = np.exp(seg - top)
            log_norm[users, c] = top[:, 0] + np.log(p.sum(axis=1))
            rows = np.flatnonzero(counts[users, c])
            if not len(rows):
                continue
            k = counts[users[rows], c]
            with np.errstate(divide="ignore"):  # Exp(1) draws of exactly 0 give key inf: picked first, as in the limit
                keys = p[rows] / rng.standard_exponential(p[rows].shape, dtype=np.float32)
            kmax = int(k.max())
            best = np.argpartition(-keys, kmax - 1, axis=1)[:, :kmax]
            ranked = np.take_along_axis(best, np.argsort(-np.take_along_axis(keys, best, 1), axis=1), 1)
            take = np.arange(kmax)[None, :] < k[:, None]
            picked_users.append(np.repeat(users[rows], k))
            picked_items.append(order[bounds[c] + ranked[take]])
    user_idx, item_idx = np.concatenate(picked_users), np.concatenate(picked_items)

    # timestamps: random order within each user, exponential gaps
    by_user = np.lexsort((rng.random(len(user_idx)), user_idx))
    user_idx, item_idx = user_idx[by_user], item_idx[by_user]
    gaps = np.floor(rng.exponential(3 * DAY_MS, len(user_idx))).astype(np.int64)
    start = START_MS + rng.integers(0, 366, num_users) * DAY_MS
    csum = np.cumsum(gaps)
    first = np.searchsorted(user_idx, user_idx)  # index of each user's first row (rows are grouped by user)
    ts = start[user_idx] + csum - csum[first] + gaps[first]

    interactions = pa.table({
        "user_id": pa.array(truth.user_ids[user_idx]), "item_id": pa.array(np.asarray(item_ids, dtype=str)[item_idx]),
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
    })
    return Simulation(interactions=interactions, truth=truth, params=truth.params)
