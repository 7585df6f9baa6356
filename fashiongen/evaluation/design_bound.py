"""The design bound: how often the best conceivable design could beat the shopper's best retrieved real item on a
simulated catalogue's data, with no CNN and no generator in the way.

A perfect image network is the simulator's true attributes z of every item; a perfect generator draws any z inside
a category's real 1-99% range. What remains is the data: a shopper's ideal is known only through a few training
picks. Per (user, category) pair:

    estimate   the user's ideal, estimated from their training items' true attributes (`ESTIMATORS`)
    retrieved  the category's `top_k` real items nearest the estimate (what a perfect-Φ recommender shows)
    design     the estimate itself, clipped to the category's real 1-99% range (what a perfect generator draws)

and the bound is the share of pairs whose design beats the best retrieved item (and the truly best real item of the
category) under the true taste. Three estimators are measured and the highest share of each is the bound. The
bound reads the truth: it lives with the evaluation and never reaches the search.

    bound = design_bound(truth, catalogue, user_idx, category_idx)     # one estimator's per-pair verdicts
    table = bound_table(truth, catalogue, user_idx)                    # every (user, category), each estimator
    table = catalogue_bound(catalogue_uri)                             # the same over a simulated catalogue's users
"""
from __future__ import annotations

import numpy as np

from fashiongen.data.contract import Catalogue, load_catalogue
from fashiongen.data.oracle import GroundTruth, load_truth
from fashiongen.evaluation.auc import bootstrap_ci

TOP_K = 3  # real items retrieved per pair, as the designs job keeps (design.top_k)
WITHIN_PRIOR = 2.0  # "within": pseudo-counts of the pooled mean in a category's estimate
# "fitted": the ideal-point softmax's scale, prior precision and steps; chosen by the log-likelihood of each user's
# validation pick (never the truth) on a grid of scale 0.05-2 x prior 0-20, the same at 10 and 65 interactions a
# user (bench/README, design_bound.py)
FIT_SCALE, FIT_PRIOR, FIT_STEPS = 0.2, 5.0, 60


def pooled_estimate(truth: GroundTruth, catalogue: Catalogue) -> np.ndarray:
    """(U, F) each user's mean true attributes over all their training items (z-units of each item's category)."""
    indptr, items = catalogue.train_csr()
    sums = np.add.reduceat(truth.item_z[items].astype(np.float64), indptr[:-1], axis=0)
    counts = np.diff(indptr)
    sums[counts == 0] = 0.0  # reduceat repeats a neighbour's row for an empty user: no items, no information
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def within_estimate(truth: GroundTruth, catalogue: Catalogue, user_idx: np.ndarray,
                    category_idx: np.ndarray) -> np.ndarray:
    """(P, F) per pair: the user's mean attributes over their training items of that category, shrunk towards the
    pooled mean by WITHIN_PRIOR pseudo-counts (the pooled mean where they have none)."""
    pooled = pooled_estimate(truth, catalogue)
    users, items = catalogue.train_users, catalogue.train_items
    num_c, num_f = len(catalogue.categories), truth.item_z.shape[1]
    cell = users * num_c + truth.item_category[items]
    sums = np.zeros((catalogue.num_users * num_c, num_f))
    np.add.at(sums, cell, truth.item_z[items])
    counts = np.bincount(cell, minlength=len(sums)).astype(np.float64)
    pair_cell = np.asarray(user_idx, np.int64) * num_c + np.asarray(category_idx, np.int64)
    n = counts[pair_cell][:, None]
    return ((sums[pair_cell] + WITHIN_PRIOR * pooled[user_idx]) / (n + WITHIN_PRIOR)).astype(np.float32)


def fitted_estimate(truth: GroundTruth, catalogue: Catalogue, steps: int = FIT_STEPS) -> np.ndarray:
    """(U, F) each user's ideal point fitted to their training picks: the MAP m_u of a within-category softmax over
    the category's items with logit -FIT_SCALE ||z_i - m_u||^2 and a N(0, 1/(2 FIT_PRIOR)) prior on m_u, by damped
    moment matching (the gradient sets the picks' mean attributes equal to the softmax's expected ones). Unlike the
    pooled mean it discounts attributes a pick has only because the category's items crowd there."""
    z, item_category = truth.item_z.astype(np.float64), truth.item_category
    counts = np.zeros((catalogue.num_users, len(catalogue.categories)))
    np.add.at(counts, (catalogue.train_users, item_category[catalogue.train_items]), 1)
    n = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    target = pooled_estimate(truth, catalogue).astype(np.float64)
    m = target.copy()
    groups = [z[item_category == c] for c in range(len(catalogue.categories))]
    for _ in range(steps):
        expected = np.zeros_like(m)
        for c, zc in enumerate(groups):
            if not len(zc):
                continue
            logits = -FIT_SCALE * ((zc ** 2).sum(axis=1)[None] - 2 * m @ zc.T + (m ** 2).sum(axis=1)[:, None])
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            expected += counts[:, c:c + 1] * (p @ zc) / p.sum(axis=1, keepdims=True)
        m += (target - expected / n - FIT_PRIOR * m / n) / (1 + FIT_PRIOR / n)
    return m.astype(np.float32)


ESTIMATORS = {
    "pooled": lambda truth, catalogue, u, c: pooled_estimate(truth, catalogue)[u],
    "within": within_estimate,
    "fitted": lambda truth, catalogue, u, c: fitted_estimate(truth, catalogue)[u],
}


def design_bound(truth: GroundTruth, catalogue: Catalogue, user_idx: np.ndarray, category_idx: np.ndarray,
                 estimate: np.ndarray | None = None, top_k: int = TOP_K) -> dict[str, np.ndarray]:
    """Per pair (P,): the true taste of the perfect design of `estimate` (P, F; the pooled estimate unless given),
    of the best of the `top_k` real items nearest it, and of the category's truly best real item; `beats_retrieved`
    and `beats_best` say whether the design wins."""
    user_idx, category_idx = np.asarray(user_idx, np.int64), np.asarray(category_idx, np.int64)
    if estimate is None:
        estimate = pooled_estimate(truth, catalogue)[user_idx]
    real_range = truth.real_range()[category_idx]  # (P, 2, F)
    low, high = real_range[:, 0], real_range[:, 1]
    design = truth.preference_of_z(user_idx, np.clip(estimate, low, high), category_idx)
    retrieved = np.full(len(user_idx), np.nan, np.float32)
    for c in np.unique(category_idx):
        rows, items = np.flatnonzero(category_idx == c), np.flatnonzero(truth.item_category == c)
        real = truth.item_z[items]
        d2 = (estimate[rows] ** 2).sum(1)[:, None] - 2 * estimate[rows] @ real.T + (real ** 2).sum(1)[None]
        k = min(top_k, len(items))
        nearest = items[np.argpartition(d2, k - 1, axis=1)[:, :k]]  # (rows, k)
        taste = truth.taste_logit(user_idx[rows], items)  # (rows, items of c)
        picked = np.searchsorted(items, nearest)  # their columns in `taste` (items ascending)
        retrieved[rows] = np.take_along_axis(taste, picked, axis=1).max(axis=1)
    best = truth.category_best(user_idx, category_idx)
    return {"design": design, "retrieved": retrieved, "truly_best": best,
            "beats_retrieved": design > retrieved, "beats_best": design > best}


def _share(wins: np.ndarray, num_users: int) -> tuple[float, float, float]:
    """The share of winning pairs and its 95% interval, users resampled (a user's pairs share one estimate)."""
    per_user = wins.reshape(num_users, -1).mean(axis=1)
    low, high = bootstrap_ci(per_user)
    return float(per_user.mean()), low, high


def bound_table(truth: GroundTruth, catalogue: Catalogue, user_idx: np.ndarray) -> dict[str, dict]:
    """Every (user, category) pair of `user_idx`, per estimator (and "bound", the highest of them on each share,
    "estimator" naming which): the shares of pairs whose perfect design beats the best retrieved and the truly best real item, each
    with its 95% bootstrap interval over users, the pairs and the users' mean training interactions."""
    num_c = len(catalogue.categories)
    users = np.repeat(np.asarray(user_idx, np.int64), num_c)
    cats = np.tile(np.arange(num_c), len(user_idx))
    interactions = float(np.diff(catalogue.train_csr()[0])[np.asarray(user_idx, np.int64)].mean())
    rows = {}
    for name, estimator in ESTIMATORS.items():
        verdict = design_bound(truth, catalogue, users, cats, estimator(truth, catalogue, users, cats))
        (r, r_lo, r_hi), (b, b_lo, b_hi) = (_share(verdict[key], len(user_idx)) for key in ("beats_retrieved", "beats_best"))
        rows[name] = {"pairs": float(len(users)), "train interactions a user": interactions,
                      "beats retrieved": r, "beats retrieved low": r_lo, "beats retrieved high": r_hi,
                      "beats truly best": b, "beats truly best low": b_lo, "beats truly best high": b_hi}
    on_retrieved = max(rows, key=lambda name: rows[name]["beats retrieved"])
    on_best = max(rows, key=lambda name: rows[name]["beats truly best"])
    rows["bound"] = {**rows[on_retrieved], **{k: v for k, v in rows[on_best].items() if "truly best" in k},
                     "estimator": on_retrieved if on_retrieved == on_best else f"{on_retrieved} / {on_best}"}
    return rows


def catalogue_bound(catalogue_uri: str) -> dict[str, dict]:
    """`bound_table` over every user of the simulated catalogue at `catalogue_uri`; a one-line CatalogueError when
    it has no truth (only simulated shoppers have one)."""
    catalogue = load_catalogue(catalogue_uri, with_images=False)
    return bound_table(load_truth(catalogue_uri, catalogue), catalogue, np.arange(catalogue.num_users))
