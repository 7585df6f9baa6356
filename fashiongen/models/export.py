"""Export a recommender for generation and serving: vectors and per-user top-k real items, as Parquet.

Under an output folder (default <lake>/export/recommender/<model_version>/):

    users.parquet      user_id: string, theta: list<float32>, model_version: string
    items.parquet      item_id: string, category: string, phi: list<float32>, model_version: string
    top_items.parquet  user_id, category, rank: int32 (1 = best), item_id, score: float32, model_version

For the factor baselines theta · phi is exactly the model's score (biases folded into the vectors); for DVBPR it is
the visual part only (with profile users θ_u scores Φ standardised per category, `design_vectors`; the count prior
and the ideal-point user side's curvature, − q · z_c(Φ)², are in neither vector). top_items ranks every real item of each category for every user by the model's full
score, the user's own items included by default: it is the
"best real items" the paper's generated designs are compared against, and a user's favourite real items are
often ones they already bought. `exclude_train=True` drops the user's training items (a recommendation list).
Users are processed in blocks, so no users x items matrix is held in memory.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from fashiongen import storage
from fashiongen.models.bpr import TrainSet

USER_BLOCK = 1024


def _vectors(matrix: torch.Tensor) -> pa.ListArray:
    """(n, K) -> list<float32> column."""
    values = np.ascontiguousarray(matrix.detach().float().cpu().numpy(), np.float32)
    offsets = pa.array(np.arange(0, values.size + 1, values.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))


def top_items(model, catalogue, top_k: int, exclude_train: bool = False,
              user_block: int = USER_BLOCK) -> dict[str, np.ndarray]:
    """Per user and category the top_k items by model score (fewer where a category has fewer candidates)."""
    train = TrainSet.from_catalogue(catalogue) if exclude_train else None
    category_items = [np.flatnonzero(catalogue.item_category == c) for c in range(len(catalogue.categories))]
    cols: dict[str, list[np.ndarray]] = {"user": [], "category": [], "rank": [], "item": [], "score": []}
    for lo in range(0, catalogue.num_users, user_block):
        users = np.arange(lo, min(lo + user_block, catalogue.num_users))
        scores = model.score(users).detach().float().cpu()
        if train is not None:
            rows = np.repeat(np.arange(len(users)), np.diff(train.indptr[users[0]:users[-1] + 2]))
            seen = train.items[train.indptr[users[0]]:train.indptr[users[-1] + 1]]
            scores[torch.from_numpy(rows), torch.from_numpy(seen)] = -torch.inf
        for c, items in enumerate(category_items):
            k = min(top_k, len(items))
            if k == 0:
                continue
            best = torch.topk(scores[:, torch.from_numpy(items)], k, dim=1)  # sorted, best first
            valid = torch.isfinite(best.values).numpy()
            cols["user"].append(np.repeat(users, k)[valid.ravel()])
            cols["category"].append(np.full(int(valid.sum()), c))
            cols["rank"].append(np.tile(np.arange(1, k + 1), len(users))[valid.ravel()])
            cols["item"].append(items[best.indices.numpy()].ravel()[valid.ravel()])
            cols["score"].append(best.values.numpy().ravel()[valid.ravel()])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def export_recommender(model, catalogue, out_uri: str, top_k: int = 3, exclude_train: bool = False) -> dict[str, str]:
    """Write users/items/top_items Parquet for a model trained on `catalogue`; returns {table: uri}."""
    version = model.model_version
    theta, phi = model.user_vectors(), model.item_features()
    if theta.shape[0] != catalogue.num_users or phi.shape[0] != catalogue.num_items:
        raise ValueError(f"model has {theta.shape[0]} users and {phi.shape[0]} items, the catalogue "
                         f"{catalogue.num_users} and {catalogue.num_items}: export with the catalogue it was trained on")
    uris = {name: storage.join(out_uri, f"{name}.parquet") for name in ("users", "items", "top_items")}
    storage.write_table(pa.table({"user_id": pa.array(catalogue.user_ids.astype(str)), "theta": _vectors(theta),
                                  "model_version": pa.array([version] * catalogue.num_users)}), uris["users"])
    categories = np.asarray(catalogue.categories, dtype=object)
    storage.write_table(pa.table({"item_id": pa.array(catalogue.item_ids.astype(str)),
                                  "category": pa.array(categories[catalogue.item_category].astype(str)),
                                  "phi": _vectors(phi), "model_version": pa.array([version] * catalogue.num_items)}),
                        uris["items"])
    top = top_items(model, catalogue, top_k, exclude_train)
    n = len(top["user"])
    storage.write_table(pa.table({
        "user_id": pa.array(catalogue.user_ids[top["user"].astype(np.int64)].astype(str)),
        "category": pa.array(categories[top["category"].astype(np.int64)].astype(str)),
        "rank": pa.array(top["rank"].astype(np.int32)),
        "item_id": pa.array(catalogue.item_ids[top["item"].astype(np.int64)].astype(str)),
        "score": pa.array(top["score"].astype(np.float32)),
        "model_version": pa.array([version] * n),
    }), uris["top_items"], row_group_size=1 << 20)
    return uris
