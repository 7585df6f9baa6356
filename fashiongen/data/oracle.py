"""The hidden ground truth of simulated shoppers: fixed pixel "oracle" features and each user's true taste.

Two tastes, chosen by `simulation.taste` when the catalogue is built and recorded in truth/oracle.json:

- "sweet_spot" (ORACLE_VERSION "sweetspot-1", the default): garment attributes measured on the garment itself
  (`fashiongen.data.garment`, blind to where it sits in the frame), and an ideal point per shopper. Each shopper
  has positive weights w_u (Dirichlet(1) over the attributes) and, per attribute, an ideal quantile level
  q_uf ~ U(0.1, 0.9); in category c the ideal is that quantile of the category's real garments, so it always lies
  inside the range they span. The style term is minus the weighted squared distance to it:
  style(u, x) = -sum_f w_uf (z_f(x) - ideal_ucf)^2, so overshooting the ideal loses.
- "linear" (ORACLE_VERSION "pixelstats-1", `simulation.preset=linear`): the earlier taste, kept bit for bit so
  earlier figures remain reproducible: style(u, x) = s_u . z(x), s_u ~ N(0, I/F), over pixel statistics of the whole
  frame (below). It is unbounded (more of what a shopper likes is always better) and several of its features
  measure framing, so a design can "win" by sliding the garment or overshooting every real garment.

Pixel statistics of "pixelstats-1", of the grayscale image g (channel mean, in [0, 1]), bg the median of its border
pixels and w = |g - bg| the "ink" weight:

    mean_intensity        mean of g
    ink_fraction          fraction of pixels with w > 0.2
    centre_row/centre_col ink-weighted centre of mass, in [-0.5, 0.5] of the image height/width
    spread_row/spread_col ink-weighted standard deviation of the row/column coordinate
    asymmetry             mean |w - mirror(w)| / mean w  (left-right)
    edge_energy           mean |vertical gradient of g| + mean |horizontal gradient of g|
    top_bottom_log_ratio  log((mean w of the upper half + 0.01) / (mean w of the lower half + 0.01))
    ink_contrast          standard deviation of g over ink pixels

The simulator z-scores the features per category (mean and std over the catalogue's items of that category,
stored with the truth) so a taste means "within any category, prefer ...". A user's true logit for item i of
category c (what generated the data, see simulate.py):

    utility(u, i) = log a_uc + (style_strength * style(u, i) + pop_i) / T - log Z_uc

a_u = category affinities (Dirichlet), pop_i = hidden Zipf popularity, T = temperature, Z_uc = the
within-category softmax normaliser (so exp(utility) is the probability that u's next pick is i).
`image_preference` is taste only: log a_uc + style_strength * style(u, image) / T, defined for any image,
generated ones included.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fashiongen import storage
from fashiongen.data.contract import Catalogue, CatalogueError, read_meta
from fashiongen.data.garment import GARMENT_FEATURE_NAMES, garment_features
from fashiongen.data.images import from_tensor_range

ORACLE_VERSIONS = {"sweet_spot": "sweetspot-1", "linear": "pixelstats-1"}  # simulation.taste -> its oracle
TRUTH_FORMAT = 2  # truth/oracle.json records its taste; files written before (no "truth_format") are refused
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


def feature_names(taste: str) -> tuple[str, ...]:
    """The oracle features a taste is defined on."""
    return GARMENT_FEATURE_NAMES if taste == "sweet_spot" else FEATURE_NAMES


def oracle_features(images: np.ndarray, taste: str) -> np.ndarray:
    """Images (uint8 NHWC, or float NCHW in [-1,1]) -> float32 (N, F) oracle features of `taste`; fixed, pixel-only:
    garment attributes for "sweet_spot", whole-frame pixel statistics for "linear"."""
    if taste not in ORACLE_VERSIONS:
        raise CatalogueError(f"unknown taste {taste!r}: use one of {sorted(ORACLE_VERSIONS)} (simulation.taste)")
    of_gray = garment_features if taste == "sweet_spot" else _features_of_gray
    out = [of_gray(_grayscale(images[k:k + _CHUNK])) for k in range(0, len(images), _CHUNK)]
    if not out:
        return np.zeros((0, len(feature_names(taste))), np.float32)
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


QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)  # the stored per-category quantiles of every attribute
IDEAL_LEVELS = (0.1, 0.9)
EXTRAPOLATION_RANGE = (0.01, 0.99)  # a design's attribute outside this range of its category's real items extrapolates  # a sweet-spot shopper's ideal quantile level of each attribute, uniform in this range


def category_quantiles(features: np.ndarray, category_idx: np.ndarray, num_categories: int) -> np.ndarray:
    """(C, F, len(QUANTILE_LEVELS)) quantiles of raw features per category (zeros for an empty category)."""
    out = np.zeros((num_categories, features.shape[1], len(QUANTILE_LEVELS)), np.float32)
    for c in range(num_categories):
        f = features[category_idx == c].astype(np.float64)
        if len(f):
            out[c] = np.quantile(f, QUANTILE_LEVELS, axis=0).T
    return out


def draw_sweet_spots(rng: np.random.Generator, num_users: int, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(ideal quantile levels, weights), each (U, F) float32: levels ~ U(IDEAL_LEVELS), weights ~ Dirichlet(1)."""
    levels = rng.uniform(*IDEAL_LEVELS, (num_users, num_features)).astype(np.float32)
    weights = rng.dirichlet(np.ones(num_features), num_users).astype(np.float32)
    return levels, weights


@dataclass
class GroundTruth:
    """Hidden taste of every user and hidden facts of every item, aligned with a dense user/item order."""

    user_ids: np.ndarray  # (U,) str
    item_ids: np.ndarray  # (N,) str
    categories: list[str]
    affinity: np.ndarray  # (U, C) category affinities, rows sum to 1
    log_normaliser: np.ndarray  # (U, C) log Z_uc of the within-category softmax
    item_category: np.ndarray  # (N,) int64
    item_features: np.ndarray  # (N, F) raw oracle features of `taste`
    popularity: np.ndarray  # (N,) hidden popularity logit
    feature_mean: np.ndarray  # (C, F)
    feature_std: np.ndarray  # (C, F)
    style_strength: float
    temperature: float
    params: dict  # simulator settings, for the record
    taste: str = "linear"  # "linear" | "sweet_spot" (see the module docstring)
    style: np.ndarray | None = None  # linear: (U, F) style vectors s_u
    ideal_level: np.ndarray | None = None  # sweet_spot: (U, F) ideal quantile level per attribute
    weight: np.ndarray | None = None  # sweet_spot: (U, F) positive attribute weights, rows sum to 1
    feature_quantiles: np.ndarray | None = None  # sweet_spot: (C, F, len(QUANTILE_LEVELS)) raw quantiles

    def __post_init__(self) -> None:
        if self.taste not in ORACLE_VERSIONS:
            raise CatalogueError(f"unknown taste {self.taste!r}: use one of {sorted(ORACLE_VERSIONS)}")
        self.item_z = standardise(self.item_features, self.item_category, self.feature_mean, self.feature_std)
        self._log_affinity = np.log(self.affinity).astype(np.float32)
        self._real_range: np.ndarray | None = None  # (C, 2, F) z of the real 1-99% range, built on first use
        self._spacing: dict[int, float] = {}  # category -> median real-to-real nearest-neighbour distance
        if self.taste == "sweet_spot":
            self._quantile_z = ((self.feature_quantiles - self.feature_mean[:, :, None])
                                / self.feature_std[:, :, None]).astype(np.float32)

    @property
    def version(self) -> str:
        return ORACLE_VERSIONS[self.taste]

    def ideal_z(self, user_idx: np.ndarray) -> np.ndarray:
        """(len(u), C, F) sweet-spot shoppers' ideal attributes per category, in the category's z-units."""
        position = self.ideal_level[np.asarray(user_idx, np.int64)] * (len(QUANTILE_LEVELS) - 1)
        below = np.minimum(np.floor(position).astype(np.int64), len(QUANTILE_LEVELS) - 2)
        frac = position - below
        features = np.arange(position.shape[1])[None, :]
        low, high = self._quantile_z[:, features, below], self._quantile_z[:, features, below + 1]  # (C, u, F)
        return (low + frac[None] * (high - low)).transpose(1, 0, 2)

    def style_scores(self, user_idx: np.ndarray, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(len(u), len(z)) style(u, x) of standardised features z (N, F) of items of categories (N,)."""
        user_idx = np.asarray(user_idx, np.int64)
        if self.taste == "linear":
            return self.style[user_idx] @ z.T
        ideal, weight = self.ideal_z(user_idx), self.weight[user_idx]
        out = np.empty((len(user_idx), len(z)), np.float32)
        for c in np.unique(category_idx):
            cols = np.flatnonzero(category_idx == c)
            zc, centre = z[cols], weight * ideal[:, c]
            out[:, cols] = -(weight @ (zc ** 2).T - 2 * centre @ zc.T + (centre * ideal[:, c]).sum(axis=1)[:, None])
        return out

    def _style_logit(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        z, cat = self.item_z[item_idx], self.item_category[item_idx]
        return (self.style_strength / self.temperature) * self.style_scores(user_idx, z, cat)

    def item_utility(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """(len(u), len(i)) true logit of catalogue items (all items when item_idx is None): the data came from it."""
        user_idx = np.asarray(user_idx, np.int64)
        item_idx = np.arange(len(self.item_ids)) if item_idx is None else np.asarray(item_idx, np.int64)
        cat = self.item_category[item_idx]
        out = self._style_logit(user_idx, item_idx) + self.popularity[item_idx] / self.temperature
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
        out = self._style_logit(user_idx, item_idx)
        return (out + self._log_affinity[user_idx][:, self.item_category[item_idx]]).astype(np.float32)

    def image_z(self, images: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N, F) standardised oracle features of any images (generated ones included) in the given categories."""
        category_idx = np.asarray(category_idx, np.int64)
        return standardise(oracle_features(images, self.taste), category_idx, self.feature_mean, self.feature_std)

    def real_range(self) -> np.ndarray:
        """(C, 2, F) each category's real 1-99% range (EXTRAPOLATION_RANGE) of the standardised attributes."""
        if self._real_range is None:
            num_f = self.item_z.shape[1]
            self._real_range = np.stack([np.stack([np.quantile(self.item_z[self.item_category == c], q, axis=0)
                                                   if (self.item_category == c).any() else np.zeros(num_f)
                                                   for q in EXTRAPOLATION_RANGE], axis=0)
                                         for c in range(len(self.categories))]).astype(np.float32)
        return self._real_range

    def extrapolation(self, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N,) how far standardised attributes z (N, F) leave their category's real 1-99% range: the largest excess
        over the attributes, in the category's std units (0 inside the range)."""
        bounds = self.real_range()[np.asarray(category_idx, np.int64)]
        excess = np.maximum(bounds[:, 0] - z, z - bounds[:, 1])
        return np.maximum(excess.max(axis=1), 0.0).astype(np.float32)

    def novelty(self, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N,) attribute distance of each z (N, F) to the nearest real item of its category, over the category's
        median real-to-real nearest-neighbour distance: 0 = a copy of a real garment, 1 = as new as a typical real
        one is next to its closest neighbour. Distances are RMS over the attributes, in z-units."""
        category_idx = np.asarray(category_idx, np.int64)
        out = np.full(len(z), np.nan, np.float32)
        for c in np.unique(category_idx):
            real = self.item_z[self.item_category == c]
            if len(real) < 2:
                continue
            rows = category_idx == c
            out[rows] = _nearest(z[rows], real) / self._real_spacing(int(c))
        return out

    def _real_spacing(self, category: int) -> float:
        if category not in self._spacing:
            real = self.item_z[self.item_category == category]
            self._spacing[category] = max(float(np.median(_nearest(real, real, exclude_self=True))), 1e-6)
        return self._spacing[category]

    @staticmethod
    def diversity(z: np.ndarray) -> np.ndarray:
        """`attribute_diversity`: (P,) mean pairwise attribute distance within each group of z (P, k, F)."""
        return attribute_diversity(z)

    def category_best(self, user_idx: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N,) each (user, category)'s true taste for the category's truly best real item."""
        user_idx, category_idx = np.asarray(user_idx, np.int64), np.asarray(category_idx, np.int64)
        out = np.full(len(user_idx), np.nan, np.float32)
        for c in np.unique(category_idx):
            rows = np.flatnonzero(category_idx == c)
            items = np.flatnonzero(self.item_category == c)
            if len(items):
                out[rows] = self.taste_logit(user_idx[rows], items).max(axis=1)
        return out

    def image_preference(self, user_idx: np.ndarray, images: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N,) taste of paired (user, image, category): log a_uc + style_strength * style(u, image) / T."""
        if not (len(user_idx) == len(images) == len(category_idx)):
            raise CatalogueError(f"image_preference needs one user and one category per image, got "
                                 f"{len(user_idx)} users, {len(images)} images, {len(category_idx)} categories")
        return self.preference_of_z(user_idx, self.image_z(images, category_idx), category_idx)

    def preference_of_z(self, user_idx: np.ndarray, z: np.ndarray, category_idx: np.ndarray) -> np.ndarray:
        """(N,) `image_preference` of paired (user, standardised attributes z (N, F), category)."""
        user_idx, category_idx = np.asarray(user_idx, np.int64), np.asarray(category_idx, np.int64)
        if self.taste == "linear":
            style = np.einsum("nf,nf->n", self.style[user_idx], z)
        else:
            ideal = self.ideal_z(user_idx)[np.arange(len(user_idx)), category_idx]
            style = -np.einsum("nf,nf->n", self.weight[user_idx], (z - ideal) ** 2)
        style = (self.style_strength / self.temperature) * style
        return (self._log_affinity[user_idx, category_idx] + style).astype(np.float32)


def attribute_diversity(z: np.ndarray) -> np.ndarray:
    """(P,) mean pairwise attribute distance (RMS over attributes) within each group of z (P, k, F); NaN for k < 2."""
    k = z.shape[1]
    if k < 2:
        return np.full(len(z), np.nan, np.float32)
    d = np.sqrt(((z[:, :, None] - z[:, None, :]) ** 2).mean(axis=3))
    return (d.sum(axis=(1, 2)) / (k * (k - 1))).astype(np.float32)


def _nearest(z: np.ndarray, real: np.ndarray, exclude_self: bool = False, chunk: int = 1024) -> np.ndarray:
    """(len(z),) RMS attribute distance of each row of z to its nearest row of `real` (not itself if exclude_self)."""
    out = np.empty(len(z), np.float32)
    sq = (real.astype(np.float64) ** 2).sum(axis=1)
    for lo in range(0, len(z), chunk):
        part = z[lo:lo + chunk].astype(np.float64)
        d2 = (part ** 2).sum(axis=1)[:, None] - 2 * part @ real.T.astype(np.float64) + sq[None]
        if exclude_self:
            d2[np.arange(len(part)), np.arange(lo, lo + len(part))] = np.inf
        out[lo:lo + len(part)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0) / real.shape[1])
    return out


def _fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def write_truth(catalogue_uri: str, truth: GroundTruth) -> None:
    """Write truth/taste.parquet, truth/items.parquet and truth/oracle.json (last: marks it complete)."""
    base = storage.join(catalogue_uri, TRUTH_DIR)
    per_user = {"style": truth.style} if truth.taste == "linear" else \
        {"ideal_level": truth.ideal_level, "weight": truth.weight}
    storage.write_table(pa.table({
        "user_id": pa.array(truth.user_ids.astype(str)), "category_affinity": _fixed_list(truth.affinity),
        **{name: _fixed_list(values) for name, values in per_user.items()},
        "log_normaliser": _fixed_list(truth.log_normaliser),
    }), storage.join(base, "taste.parquet"))
    storage.write_table(pa.table({
        "item_id": pa.array(truth.item_ids.astype(str)), "popularity": pa.array(truth.popularity.astype(np.float32)),
        "oracle_features": _fixed_list(truth.item_features),
    }), storage.join(base, "items.parquet"))
    info = {
        "truth_format": TRUTH_FORMAT, "taste": truth.taste, "oracle_version": truth.version,
        "feature_names": list(feature_names(truth.taste)), "categories": truth.categories,
        "feature_mean": truth.feature_mean.tolist(), "feature_std": truth.feature_std.tolist(),
        "style_strength": truth.style_strength, "temperature": truth.temperature, "simulation": truth.params,
        "utility": "log a_uc + (style_strength * style(u, i) + pop_i) / T - log Z_uc",
        "style": "s_u . z_i" if truth.taste == "linear" else "-sum_f w_uf (z_if - ideal_ucf)^2",
    }
    if truth.taste == "sweet_spot":
        info.update(quantile_levels=QUANTILE_LEVELS.tolist(), feature_quantiles=truth.feature_quantiles.tolist())
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
    taste = info.get("taste")
    if info.get("truth_format") != TRUTH_FORMAT or ORACLE_VERSIONS.get(taste) != info.get("oracle_version"):
        raise CatalogueError(f"truth of {catalogue_uri!r} was written by an older fashiongen (oracle "
                             f"{info.get('oracle_version')!r}, no recorded taste): rebuild it with "
                             "`fashiongen prepare --force`")
    categories = list(info["categories"])
    num_c, num_f = len(categories), len(info["feature_names"])
    table = storage.read_table(storage.join(base, "taste.parquet"))
    items = storage.read_table(storage.join(base, "items.parquet"))
    t_users = np.asarray(table.column("user_id").to_pylist(), dtype=str)
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
    per_user = ("style",) if taste == "linear" else ("ideal_level", "weight")
    return GroundTruth(
        user_ids=user_ids, item_ids=item_ids, categories=categories,
        affinity=_matrix(table.column("category_affinity"), num_c)[u_pos],
        **{name: _matrix(table.column(name), num_f)[u_pos] for name in per_user},
        feature_quantiles=np.asarray(info["feature_quantiles"], np.float32) if taste == "sweet_spot" else None,
        taste=taste, log_normaliser=_matrix(table.column("log_normaliser"), num_c)[u_pos],
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
