"""Taste fidelity: how well a recommender's *visual* scorer tracks the simulated shoppers' true taste.

For each sampled user, the Spearman rank correlation between the scorer's scores of the catalogue's items and the
user's true taste (`GroundTruth.taste_logit`: category affinity + style, no popularity — what an image can carry),
over all items ("overall") and within each category, averaged over (user, category) ("within"). Within a category
the affinity is constant, so "within" measures style alone: the figure that predicts whether designs that climb the
scorer also climb the shopper's taste. Visual recommenders are judged on θ_u·Φ_i (what the designs climb, without
any item bias); other models on their score. Ranks in numpy, ties averaged.
"""
from __future__ import annotations

import numpy as np
import torch

from fashiongen.evaluation.auc import ScoreFn
from fashiongen.models.contract import visual_score_matrix


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Row-wise ranks (0-based) of a 2-D array, ties given their average rank."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, axis=1, kind="stable")
    ranks = np.empty_like(values)
    rows = np.arange(values.shape[0])[:, None]
    ranks[rows, order] = np.arange(values.shape[1], dtype=np.float64)[None, :]
    sorted_values = np.take_along_axis(values, order, axis=1)
    for r in range(values.shape[0]):  # average the ranks of tied runs
        starts = np.flatnonzero(np.r_[True, sorted_values[r, 1:] != sorted_values[r, :-1]])
        if len(starts) == values.shape[1]:
            continue
        ends = np.r_[starts[1:], values.shape[1]]
        mean = (starts + ends - 1) / 2.0
        ranks[r, order[r]] = np.repeat(mean, ends - starts)
    return ranks


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of `a` with the same row of `b` (NaN where either row is constant)."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (ra * rb).sum(axis=1) / denominator, np.nan)


def taste_fidelity(scores: ScoreFn, truth, item_category: np.ndarray, users: np.ndarray,
                   batch_users: int = 64) -> dict[str, float]:
    """{"taste_overall", "taste_within"}: mean per-user Spearman of `scores(users)` with the true taste, over all
    items and within each category (see the module docstring)."""
    item_category = np.asarray(item_category)
    categories = np.unique(item_category)
    overall, within = [], []
    for lo in range(0, len(users), batch_users):
        batch = np.asarray(users[lo:lo + batch_users])
        predicted = np.asarray(scores(batch), np.float64)
        true = truth.taste_logit(batch).astype(np.float64)
        overall.append(spearman_rows(predicted, true))
        within += [spearman_rows(predicted[:, item_category == c], true[:, item_category == c]) for c in categories]
    mean = (lambda parts: float(np.nanmean(np.concatenate(parts))) if parts else float("nan"))
    return {"taste_overall": mean(overall), "taste_within": mean(within)}


def visual_scores(model, item_category: np.ndarray) -> ScoreFn:
    """What a model's designs would climb: the visual score of each item in its category (`design_vectors`: θ_u·Φ_i
    in the paper, no prior or item bias) for visual recommenders, else the model's score."""
    if not getattr(model, "visual", False):
        return lambda users: model.score(np.asarray(users)).detach().float().cpu().numpy()
    phi = model.item_features().detach().float()
    item_category = np.asarray(item_category, np.int64)
    members = {int(c): np.flatnonzero(item_category == c) for c in np.unique(item_category)}

    def scores(users: np.ndarray) -> np.ndarray:
        users_t = torch.as_tensor(np.asarray(users, np.int64), device=phi.device)
        out = np.empty((len(users_t), len(phi)), np.float32)
        with torch.no_grad():
            for c, items in members.items():
                out[:, items] = visual_score_matrix(phi[torch.as_tensor(items, device=phi.device)],
                                                    *model.score_terms(users_t, torch.full_like(users_t, c))) \
                    .cpu().numpy()
        return out

    return scores
