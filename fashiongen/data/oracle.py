"""The hidden ground truth of simulated shoppers: a fixed pixel "oracle" and each user's true taste.

Oracle features (ORACLE_VERSION "pixelstats-1") are hand-crafted statistics of the grayscale image
(channel mean, in [0, 1]); they share nothing with any model we train. With g the grayscale image,
bg the median of its border pixels and w = |g - bg| the "ink" weight:

    mean_intensity        mean of g
    ink_fraction          fraction of pixels with w > 0.2
    centre_row/centre_col ink-weighted centre of mass, in [-0.5, 0.5] of the image height/width
    spread_row/spread_col ink-weighted standard deviation of the row/column coordinate
    asymmetry             mean |w - mirror(w)| / mean w  (left-right)
    edge_energy           mean |vertical gradient of g| + mean |horizontal gradient of g|
    top_bottom_log_ratio  log((mean w of the upper half + 0.01) / (mean w of the lower half + 0.01))
    ink_contrast          standard deviation of g over ink pixels

The simulator z-scores these per category (mean and std over the catalogue's items of that category,
stored with the truth) so a style vector means "within any category, prefer ...". A user's true logit
for item i of category c (what generated the data, see simulate.py):

    utility(u, i) = log a_uc + (style_strength * s_u . z_i + pop_i) / T - log Z_uc

a_u = category affinities (Dirichlet), s_u = style vector, z_i = standardised oracle features, pop_i =
hidden Zipf popularity, T = temperature, Z_uc = the within-category softmax normaliser (so
exp(utility) is the probability that u's next pick is i). `image_preference` is taste only:
log a_uc + style_strength * s_u . z(image) / T, defined for any image, generated ones included.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fashiongen import storage
from fashiongen.data.contract import Catalogue, CatalogueError, read_meta
from fashiongen.data.images import from_tensor_range

ORACLE_VERSION = "pixelstats-1"
FEATURE_NAMES = ("mean_intensity", "ink_fraction", "centre_row", "centre_col", "spread_row", "spread_col",
                 "asymmetry", "edge_energy", "top_bottom_log_ratio", "ink_contrast")
INK_THRESHOLD = 0.2
TRUTH_DIR = "truth"
_CHUNK = 2048  # images per chunk when computing features (bounds memory for large images)


def _grayscale(images: np.ndarray) -> np.ndarray:
    """uint8 (N,H,W,C), or float (N,C,H,W) in [-1,1] (rounded to uint8 first, as saving it would), -> float32
    (N,H,W) in [0,1]."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise CatalogueError(f"oracle features need a batch of images (4 dims), got shape {images.shape}")
    if images.dtype != np.uint8:
        if images.shape[1] not in (1, 3):
            raise CatalogueError(f"float images must be NCHW with 1 or 3 channels in [-1, 1], got shape {images.shape}")
        images = from_tensor_range(images)
    return images.astype(np.float32).mean(axis=3) / 255.0


def _features_of_gray(g: np.ndarray) -> np.ndarray:
    n, h, w_ = g.shape
    border = np.concatenate([g[:, 0, :], g[:, -1, :], g[:, :, 0], g[:, :, -1]], axis=1)
    bg = np.median(border, axis=1)[:, None, None]
    w = np.abs(g - bg)
    ink = w > INK_THRESHOLD
    mass = w.sum(axis=(1, 2)) + 1e-6
    rows = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    cols = (np.arange(w_, dtype=np.float32) + 0.5) / w_ - 0.5
    row_mass, col_mass = w.sum(axis=2), w.sum(axis=1)
    centre_row, centre_col = row_mass @ rows / mass, col_mass @ cols / mass
    spread_row = np.sqrt(np.maximum(row_mass @ rows**2 / mass - centre_row**2, 0.0))
    spread_col = np.sqrt(np.maximum(col_mass @ cols**2 / mass - centre_col**2, 0.0))
    asymmetry = np.abs(w - w[:, :, ::-1]).mean(axis=(1, 2)) / (w.mean(axis=(1, 2)) + 1e-3)
    edge = np.abs(np.diff(g, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(g, axis=2)).mean(axis=(1, 2))
    upper, lower = w[:, : h // 2].mean(axis=(1, 2)), w[:, h - h // 2:].mean(axis=(1, 2))
    ink_n = ink.sum(axis=(1, 2)) + 1e-6
    ink_mean = (g * ink).sum(axis=(1, 2)) / ink_n
    ink_contrast = np.sqrt(np.maximum((g**2 * ink).sum(axis=(1, 2)) / ink_n - ink_mean**2, 0.0))
    return np.stack([g.mean(axis=(1, 2)), ink.mean(axis=(1, 2)), centre_row, centre_col, spread_row, spread_col,
                     asymmetry, edge, np.log((upper + 0.01) / (lower + 0.01)), ink_contrast], axis=1)


def oracle_features(images: np.ndarray) -> np.ndarray:
    """Images (uint8 NHWC, or float NCHW in [-1,1]) -> float32 (N, len(FEATURE_NAMES)); fixed, pixel-only."""
    out = [_features_of_gray(_grayscale(images[k:k + _CHUNK])) for k in range(0, len(images), _CHUNK)]
    if not out:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32)
    return np.concatenate(out).astype(np.float32)


def standardise(features: np.ndarray, category_idx: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-category z-scores of raw oracle features (mean, std: (C, F))."""
    return ((features - mean[category_idx]) / std[category_idx]).astype(np.float32)


def category_feature_stats(features: np.ndarray, category_idx: np.ndarray, num_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, F) mean and std of raw features per category; a constant feature gets std 1 (z-score 0)."""
    mean = np.zeros((num_categories, features.shape[1]), np.float64)
    std = np.ones_like(mean)
    for c in range(num_categories):
        f = features[category_idx == c].astype(np.float64)
        if len(f):
            mean[c] = f.mean(axis=0)
            s = f.std(axis=0)
            std[c] = np.where(s > 1e-6, s, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class GroundTruth:
    """Hidden taste of every user and hidden facts of every item, aligned with a dense user/item order."""

    user_ids: np.ndarray  # (U,) str
    item_ids: np.ndarray  # (N,) str
    categories: list[str]
    affinity: np.ndarray  # (U, C) category affinities, rows sum to 1
    style: np.ndarray  # (U, F) style vectors
    log_normaliser: np.ndarray  # (U, C) log Z_uc of the within-category softmax
    item_category: np.ndarray  # (N,) int64
    item_features: np.ndarray  # (N, F) raw oracle features
    popularity: np.ndarray  # (N,) hidden popularity logit
    feature_mean: np.ndarray  # (C, F)
    feature_std: np.ndarray  # (C, F)
    style_strength: float
    temperature: float
    params: dict  # simulator settings, for the record

    def __post_init__(self) -> None:
        self.item_z = standardise(self.item_features, self.item_category, self.feature_mean, self.feature_std)
        self._log_affinity = np.log(self.affinity).astype(np.float32)

    def _style_logit(self, user_idx: np.ndarray, z: np.ndarray) -> np.ndarray:
        return (self.style_strength / self.temperature) * (self.style[user_idx] @ z.T)

    def item_utility(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """(len(u), len(i)) true logit of catalogue items (all items when item_idx is None): the data came from it."""
        user_idx = np.asarray(user_idx, np.int64)
        item_idx = np.arange(len(self.item_ids)) if item_idx is None else np.asarray(item_idx, np.int64)
        cat = self.item_category[item_idx]
        out = self._style_logit(user_idx, self.item_z[item_idx]) + self.popularity[item_idx] / self.temperature
        out += self._log_affinity[user_idx][:, cat] - self.log_normaliser[user_idx][:, cat]
        return out.astype(np.float32)

    def category_logit(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """(len(u), len(i)) log affinity of each item's category: the best a category-only model can know."""
        item_idx = np.arange(len(self.item_ids)) if item_idx is None else np.asarray(item_idx, np.int64)
        return self._log_affinity[np.asarray(user_idx, np.int64)][:, self.item_category[item_idx]]

    def taste_logit(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """(len(u), len(i)) `image_preference` of catalogue items: category affinity + style, no popularity."""
        user_idx = np.asarray(user_idx, np.int64)
        item_idx = np.arange(len(self.item_ids)) if item_idx is None else np.asarray(item_idx, np.int64)
        out = self._style_logit(user_idx, self.item_z[item_idx])
        return (out + self._log_affinity[user_idx][:, self.item_category[item_idx]]).astype(np.float32)

    def image_preference(self, user_idx: np.ndarray, images: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N,) taste of paired (user, image, category): log a_uc + style_strength * s_u . z(image) / T."""
        user_idx, category_idx = np.asarray(user_idx, np.int64), np.asarray(category_idx, np.int64)
        if not (len(user_idx) == len(images) == len(category_idx)):
            raise CatalogueError(f"image_preference needs one user and one category per image, got "
                                 f"{len(user_idx)} users, {len(images)} images, {len(category_idx)} categories")
        z = standardise(oracle_features(images), category_idx, self.feature_mean, self.feature_std)
        style = (self.style_strength / self.temperature) * np.einsum("nf,nf->n", self.style[user_idx], z)
        return (self._log_affinity[user_idx, category_idx] + style).astype(np.float32)


def _fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def write_truth(catalogue_uri: str, truth: GroundTruth) -> None:
    """Write truth/taste.parquet, truth/items.parquet and truth/oracle.json (last: marks it complete)."""
    base = storage.join(catalogue_uri, TRUTH_DIR)
    storage.write_table(pa.table({
        "user_id": pa.array(truth.user_ids.astype(str)), "category_affinity": _fixed_list(truth.affinity),
        "style": _fixed_list(truth.style), "log_normaliser": _fixed_list(truth.log_normaliser),
    }), storage.join(base, "taste.parquet"))
    storage.write_table(pa.table({
        "item_id": pa.array(truth.item_ids.astype(str)), "popularity": pa.array(truth.popularity.astype(np.float32)),
        "oracle_features": _fixed_list(truth.item_features),
    }), storage.join(base, "items.parquet"))
    info = {
        "oracle_version": ORACLE_VERSION, "feature_names": list(FEATURE_NAMES), "categories": truth.categories,
        "feature_mean": truth.feature_mean.tolist(), "feature_std": truth.feature_std.tolist(),
        "style_strength": truth.style_strength, "temperature": truth.temperature, "simulation": truth.params,
        "utility": "log a_uc + (style_strength * s_u.z_i + pop_i) / T - log Z_uc",
    }
    storage.write_bytes(storage.join(base, "oracle.json"), json.dumps(info, indent=2).encode())


def truth_exists(catalogue_uri: str) -> bool:
    return storage.exists(storage.join(catalogue_uri, TRUTH_DIR, "oracle.json"))


def load_truth(catalogue_uri: str, catalogue: Catalogue | None = None) -> GroundTruth:
    """The ground truth of a simulated catalogue, aligned with `catalogue`'s dense user and item order."""
    meta = catalogue.meta if catalogue is not None else read_meta(catalogue_uri)
    if not meta.get("simulated") or not truth_exists(catalogue_uri):
        raise CatalogueError(f"catalogue {catalogue_uri!r} is not simulated (no {TRUTH_DIR}/oracle.json): the ground "
                             "truth exists only for simulated shoppers (data.source=fashion_mnist)")
    base = storage.join(catalogue_uri, TRUTH_DIR)
    info = json.loads(storage.read_bytes(storage.join(base, "oracle.json")))
    if info["oracle_version"] != ORACLE_VERSION:
        raise CatalogueError(f"truth of {catalogue_uri!r} uses oracle {info['oracle_version']!r}, this code has "
                             f"{ORACLE_VERSION!r}: rebuild with `fashiongen prepare --force`")
    categories = list(info["categories"])
    num_c, num_f = len(categories), len(info["feature_names"])
    taste = storage.read_table(storage.join(base, "taste.parquet"))
    items = storage.read_table(storage.join(base, "items.parquet"))
    t_users = np.asarray(taste.column("user_id").to_pylist(), dtype=str)
    t_items = np.asarray(items.column("item_id").to_pylist(), dtype=str)
    user_ids = np.sort(t_users) if catalogue is None else catalogue.user_ids
    item_ids = np.sort(t_items) if catalogue is None else catalogue.item_ids
    u_pos, i_pos = _align(t_users, user_ids, "user"), _align(t_items, item_ids, "item")
    cat_index = {c: k for k, c in enumerate(categories)}
    if catalogue is not None:
        if catalogue.categories != categories:
            raise CatalogueError(f"truth categories {categories} differ from the catalogue's {catalogue.categories}: "
                                 "rebuild with `fashiongen prepare --force`")
        item_category = catalogue.item_category
    else:
        cats = storage.read_table(storage.join(catalogue_uri, "items.parquet"), columns=["item_id", "category"])
        by_id = dict(zip(cats.column("item_id").to_pylist(), cats.column("category").to_pylist()))
        item_category = np.array([cat_index[by_id[i]] for i in item_ids], np.int64)
    return GroundTruth(
        user_ids=user_ids, item_ids=item_ids, categories=categories,
        affinity=_matrix(taste.column("category_affinity"), num_c)[u_pos],
        style=_matrix(taste.column("style"), num_f)[u_pos],
        log_normaliser=_matrix(taste.column("log_normaliser"), num_c)[u_pos],
        item_category=item_category, item_features=_matrix(items.column("oracle_features"), num_f)[i_pos],
        popularity=items.column("popularity").to_numpy()[i_pos],
        feature_mean=np.asarray(info["feature_mean"], np.float32), feature_std=np.asarray(info["feature_std"], np.float32),
        style_strength=float(info["style_strength"]), temperature=float(info["temperature"]), params=info["simulation"],
    )


def _align(stored: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    order = np.argsort(stored)
    pos = np.clip(np.searchsorted(stored, wanted, sorter=order), 0, len(stored) - 1)
    idx = order[pos]
    missing = stored[idx] != wanted
    if missing.any():
        raise CatalogueError(f"{what} {wanted[missing][0]!r} of the catalogue has no ground truth: the truth/ folder "
                             "belongs to another build; rebuild with `fashiongen prepare --force`")
    return idx


def oracle_auc(catalogue: Catalogue, truth: GroundTruth, *, score: str = "utility", split: str = "test",
               max_users: int = 0, batch_users: int = 256) -> float:
    """Full AUC of an oracle scorer: each user's held-out item vs every item the user never interacted with
    (ties count half), averaged over users. score="utility" is the ceiling any model can reach;
    "category" ranks by category affinity only; "taste" by affinity + style (no popularity). max_users > 0 uses the first max_users users."""
    scorers = {"utility": truth.item_utility, "category": truth.category_logit, "taste": truth.taste_logit}
    if score not in scorers:
        raise CatalogueError(f"unknown oracle score {score!r}: use one of {sorted(scorers)}")
    held = {"test": catalogue.test_item, "validation": catalogue.validation_item}[split]
    num_users = catalogue.num_users if max_users <= 0 else min(max_users, catalogue.num_users)
    indptr, train_items = catalogue.train_csr()
    total = 0.0
    for lo in range(0, num_users, batch_users):
        users = np.arange(lo, min(lo + batch_users, num_users))
        scores = scorers[score](users)
        pos = scores[np.arange(len(users)), held[users]][:, None]
        wins = (scores < pos).sum(axis=1) + 0.5 * (scores == pos).sum(axis=1)
        counts = indptr[users + 1] - indptr[users]
        rows = np.concatenate([np.repeat(np.arange(len(users)), counts), np.arange(len(users)), np.arange(len(users))])
        seen = np.concatenate([train_items[indptr[lo]:indptr[users[-1] + 1]], catalogue.validation_item[users],
                               catalogue.test_item[users]])
        s = scores[rows, seen]
        wins -= np.bincount(rows, (s < pos[rows, 0]) + 0.5 * (s == pos[rows, 0]), minlength=len(users))
        negatives = catalogue.num_items - counts - 2
        total += float((wins / negatives).sum())
    return total / num_users
