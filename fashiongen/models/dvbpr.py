"""DVBPR (Kang et al. 2017): x_ui = θ_u · Φ(X_i), Φ a CNN trained end to end with the BPR objective.

As the official code: no item bias and no non-visual factors; one CNN shared by the positive and negative branch
(Siamese: both images go through the same network in one pass); θ_u ~ U(0, 0.01); Adam(1e-4); batch 128; the loss
is a batch SUM

    loss = -Σ_b ln σ(θ_u·(Φ(X_i) − Φ(X_j))) + λ2·½·Σ_b ‖θ_u‖² + λ1·½·Σ_W ‖W‖²

with λ1 = 1e-3 on the conv and fc weights (biases excluded) and λ2 = 1 on the θ rows of the batch (a user drawn
twice counts twice). Dropout (0.5) is on while training and off in `encode_images`/`item_features`.

Training runs in-process with `fit` or distributed with fashiongen.training.recommender (Ray Train); both use
`DVBPRNet` and `dvbpr_loss`. After training, Φ of every catalogue item is computed once (eval mode) and kept in the
checkpoint, so scoring and export need no images.

`user_model="profile"` (not in the paper) replaces the learned θ_u after training by a content profile of u's items
on the trained Φ (`UserProfiles`): the image network is trained exactly as above, only the user side changes.
`user_model="ideal_point"` adds a fitted curvature to the profile, so each shopper's score has a maximum (a sweet
spot) instead of growing without bound along θ_u.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashiongen.data.images import to_tensor_range
from fashiongen.models.bpr import CategoryIndex, EpochTriples, TrainSet, sample_triples
from fashiongen.models.cnn import build_encoder, regularised_weights
from fashiongen.models.contract import VisualRecommender, register_recommender

ENCODE_BATCH = 512
TRAINING_CACHE_BYTES = 2 * 1024**3  # convert the whole catalogue once when float32 images take at most this
PRIOR_TRIPLES = 50_000  # triples the count prior's two weights (and the profile's weights) are fitted on
USER_MODELS = ("learned", "profile", "ideal_point")
# ideal_point: the least curvature per dimension of z, so the score falls off in every direction (demo lake,
# validation: 0 -> AUC .750 / taste within .509 with 75 of 100 dimensions left linear; 0.002 -> .750 / .517;
# 0.005 -> .748 / .520; 0.02 -> .725 / .494)
CURVATURE_FLOOR = 0.002


class CountPrior(nn.Module):
    """A non-visual prior for ranking real items (not in the paper): α·log share_u(c_i) + γ·log(1 + n_i), the
    user's smoothed share of training items in the item's category and the item's training count, with α and γ
    learned. Fixed counts (buffers, identical on every rank); the designs never see it."""

    SMOOTHING = 0.1  # pseudo-count per category

    def __init__(self, num_users: int, num_items: int, num_categories: int):
        super().__init__()
        self.register_buffer("log_share", torch.zeros(num_users, num_categories))
        self.register_buffer("log_count", torch.zeros(num_items))
        self.register_buffer("item_category", torch.zeros(num_items, dtype=torch.long))
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.gamma = nn.Parameter(torch.tensor(0.0))

    @torch.no_grad()
    def fit_counts(self, train_users: np.ndarray, train_items: np.ndarray, item_category: np.ndarray) -> None:
        users, categories = self.log_share.shape
        counts = np.zeros((users, categories))
        np.add.at(counts, (train_users, item_category[train_items]), 1.0)
        share = (counts + self.SMOOTHING) / (counts.sum(1, keepdims=True) + self.SMOOTHING * categories)
        self.log_share.copy_(torch.from_numpy(np.log(share)).float())
        self.log_count.copy_(torch.log1p(torch.bincount(torch.from_numpy(train_items),
                                                        minlength=len(self.log_count)).float()))
        self.item_category.copy_(torch.from_numpy(np.asarray(item_category, np.int64)))

    def fit_weights(self, users: np.ndarray, pos: np.ndarray, neg: np.ndarray, steps: int = 200) -> None:
        """Start α and γ where BPR on the prior alone puts them (full-batch Adam on the given triples), so the
        network learns what the counts cannot say from its first step."""
        u, i, j = (torch.as_tensor(a, dtype=torch.long, device=self.log_count.device) for a in (users, pos, neg))
        optimiser = torch.optim.Adam([self.alpha, self.gamma], lr=0.05)
        for _ in range(steps):
            loss = -F.logsigmoid(self(u, i) - self(u, j)).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,) prior of paired users and items."""
        return self.alpha * self.log_share[users, self.item_category[items]] + self.gamma * self.log_count[items]

    def matrix(self, users: torch.Tensor, items: torch.Tensor | slice) -> torch.Tensor:
        """(len(users), len(items)) prior of every user against every item."""
        cats = self.item_category[items]
        return self.alpha * self.log_share[users][:, cats] + self.gamma * self.log_count[items][None, :]


class UserProfiles(nn.Module):
    """θ_u as a content profile of u's training items (not in the paper). Each item's Φ is standardised within its
    category, z_i = (Φ_i − μ_c) / σ_c, and P_u = Σ_{i ∈ I_u} z_i / (n_u + 1) (shrunk toward 0 for few items). The
    visual score of an image x of category c is (w ∘ P_u) · z_c(Φ(x)): affine in Φ(x), so designs climb it through Φ
    as they climb θ_u · Φ. Real items are ranked with w_s · log share_u(c) + w_n · log(1 + n_i) added (the count
    prior's features, its own copy: the network may be trained without one). The profile's weight is one per
    dimension of z (w ∘ P_u; chosen on validation over one scalar: +0.03 taste fidelity, +0.003 AUC), fitted with
    the prior's two by BPR on training triples with each positive left out of its own profile and counts, as ranking
    sees held-out items. No SGD over users: a user's vector is a mean, which the nightly refresh recomputes in closed
    form.

    With `ideal_point`, the visual score is (w ∘ P_u) · z − q · z², q ≥ 0 one curvature per dimension fitted with
    the weights above: concave in z, so a shopper's score peaks at z* = w ∘ P_u / 2q (their sweet spot) and falls
    beyond it, where the linear profile rewards every step further along P_u."""

    def __init__(self, num_users: int, k: int, num_categories: int, num_items: int, ideal_point: bool = False):
        super().__init__()
        self.register_buffer("total", torch.zeros(num_users, k))  # Σ z over the user's training items
        self.register_buffer("count", torch.zeros(num_users))  # n_u
        self.register_buffer("mean", torch.zeros(num_categories, k))  # μ_c of Φ
        self.register_buffer("scale", torch.ones(num_categories, k))  # 1 / σ_c of Φ
        self.register_buffer("item_category", torch.zeros(num_items, dtype=torch.long))
        self.register_buffer("log_share", torch.zeros(num_users, num_categories))
        self.register_buffer("log_count", torch.zeros(num_items))
        self.register_buffer("weight", torch.tensor([0.0, 0.0, 1.0]))  # share, count, profile
        self.register_buffer("dim_weight", torch.ones(k))  # the profile's weight per dimension of z
        self.register_buffer("curvature", torch.zeros(k))  # q: 0 = the linear profile
        self.ideal_point = ideal_point

    def standardised(self, phi: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        return (phi - self.mean[categories]) * self.scale[categories]

    @torch.no_grad()
    def fit(self, item_phi: torch.Tensor, item_category: np.ndarray, train: TrainSet,
            triples: tuple[np.ndarray, np.ndarray, np.ndarray], steps: int = 300) -> None:
        """Category statistics of Φ, every user's profile and counts, and the weights (full-batch Adam on
        `triples`)."""
        device = item_phi.device
        cats = torch.as_tensor(np.asarray(item_category, np.int64), device=device)
        self.item_category.copy_(cats)
        for c in range(len(self.mean)):
            members = item_phi[cats == c]
            if len(members):
                self.mean[c] = members.mean(0)
                self.scale[c] = 1.0 / (members.std(0, unbiased=False) + 1e-6)
        self.refit(np.arange(len(self.total)), train, item_phi)
        share, count = (torch.as_tensor(a, device=device) for a in pick_counts(train, item_category, len(self.mean)))
        z = self.standardised(item_phi, cats)
        u, i, j = (torch.as_tensor(a, dtype=torch.long, device=device) for a in triples)
        left_out = (self.total[u] - z[i]) * z[i] / self.count[u].clamp(min=1.0)[:, None]
        kept = self.total[u] * z[j] / (self.count[u] + 1.0)[:, None]
        smooth = CountPrior.SMOOTHING
        same = (cats[j] == cats[i]).float()  # j's category share also loses the left-out pick
        features = torch.cat([
            torch.log((share[u, cats[i]] - 1.0 + smooth) / (share[u, cats[j]] - same + smooth))[:, None],
            (torch.log1p(count[i] - 1.0) - torch.log1p(count[j]))[:, None],
            left_out - kept], 1)  # the profile's term per dimension: which of Φ's dimensions carry taste
        k = len(self.dim_weight)
        weight = torch.cat([torch.tensor([1.0, 0.0], device=device), torch.ones(k, device=device)])
        if self.ideal_point:  # the curvature's term per dimension
            features = torch.cat([features, z[j] ** 2 - z[i] ** 2], 1)  # -q·(z_i² - z_j²)
            weight = torch.cat([weight, torch.full((k,), CURVATURE_FLOOR, device=device)])
        weight.requires_grad_(True)
        optimiser = torch.optim.Adam([weight], lr=0.05)
        with torch.enable_grad():
            for _ in range(steps):
                loss = -F.logsigmoid(features @ weight).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                with torch.no_grad():
                    weight[2 + k:].clamp_(min=CURVATURE_FLOOR)  # concave in every direction: a maximum
        self.weight.copy_(torch.cat([weight.detach()[:2], torch.ones(1, device=device)]))
        self.dim_weight.copy_(weight.detach()[2:2 + k])
        self.curvature.copy_(weight.detach()[2 + k:] if self.ideal_point else torch.zeros(k, device=device))

    @torch.no_grad()
    def refit(self, users: np.ndarray, train: TrainSet, item_phi: torch.Tensor) -> None:
        """Recompute the profiles and category shares of `users` from their items in `train`, and every item's
        count (the weights and Φ's statistics are kept)."""
        users = np.asarray(users, np.int64)
        starts, counts = train.indptr[users], train.indptr[users + 1] - train.indptr[users]
        first = np.repeat(np.cumsum(counts) - counts, counts)  # where each user's run begins in the gathered list
        positions = np.repeat(starts, counts) + np.arange(counts.sum()) - first
        rows = torch.as_tensor(np.repeat(np.arange(len(users)), counts), device=item_phi.device)
        items = torch.as_tensor(train.items[positions], device=item_phi.device)
        z = self.standardised(item_phi[items], self.item_category[items])
        index = torch.as_tensor(users, device=item_phi.device)
        self.total[index] = torch.zeros(len(users), self.total.shape[1], device=item_phi.device).index_add_(0, rows, z)
        self.count[index] = torch.as_tensor(counts, dtype=torch.float32, device=item_phi.device)
        per_category = torch.zeros(len(users), len(self.mean), device=item_phi.device)
        per_category.index_put_((rows, self.item_category[items]), torch.ones(len(items), device=item_phi.device),
                                accumulate=True)
        self.log_count.copy_(torch.log1p(torch.bincount(torch.as_tensor(train.items, device=item_phi.device),
                                                        minlength=len(self.log_count)).float()))
        smooth = CountPrior.SMOOTHING
        self.log_share[index] = torch.log((per_category + smooth)
                                          / (self.count[index][:, None] + smooth * len(self.mean)))

    def vectors(self, users: torch.Tensor) -> torch.Tensor:
        """w ∘ P_u (the weight per dimension, times the profile's global weight of models fitted before it):
        (len(users), K)."""
        return self.weight[2] * self.dim_weight * self.total[users] / (self.count[users] + 1.0)[:, None]

    def design_curvature(self, categories: torch.Tensor) -> torch.Tensor:
        """a (P, K) with q · z_c(Φ)² = a · (Φ - μ_c)²."""
        return self.curvature * self.scale[categories] ** 2

    def design_vectors(self, users: torch.Tensor, categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(v, b) with v · Φ(x) + b − a · Φ(x)² = (w ∘ P_u) · z − q · z², z = z_c(Φ(x)), a = `design_curvature`."""
        mean = self.mean[categories]
        v = self.vectors(users) * self.scale[categories]
        a = self.design_curvature(categories)
        return v + 2 * a * mean, -(v * mean).sum(1) - (a * mean ** 2).sum(1)

    def matrix(self, users: torch.Tensor, items: torch.Tensor | slice, item_phi: torch.Tensor) -> torch.Tensor:
        """(len(users), len(items)) scores of real items: the visual score plus the weighted count prior."""
        cats = self.item_category[items]
        z = self.standardised(item_phi[items], cats)
        return self.vectors(users) @ z.T - (z ** 2 @ self.curvature)[None, :] \
            + self.weight[0] * self.log_share[users][:, cats] + self.weight[1] * self.log_count[items][None, :]


def pick_counts(train: TrainSet, item_category: np.ndarray, num_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """Training picks per (user, category) (U, C) and per item (N,), float32: the count prior's raw counts."""
    users = np.repeat(np.arange(train.num_users), np.diff(train.indptr))
    per_user = np.zeros((train.num_users, num_categories), np.float32)
    np.add.at(per_user, (users, np.asarray(item_category)[train.items]), 1.0)
    return per_user, np.bincount(train.items, minlength=train.num_items).astype(np.float32)


class DVBPRNet(nn.Module):
    """θ (an embedding of users) and the image encoder Φ; forward gives x_uij = θ_u·(Φ(X_i) − Φ(X_j)), plus
    β_i − β_j when the net has item biases (`num_items` > 0: not in the paper; they rank real items only)."""

    def __init__(self, num_users: int, k: int, arch: str, image_shape: tuple[int, int, int], dropout: float = 0.5,
                 num_items: int = 0, prior_categories: int = 0, prior_items: int = 0):
        super().__init__()
        self.prior = CountPrior(num_users, prior_items, prior_categories) if prior_categories else None
        channels, height, _ = image_shape
        self.encoder = build_encoder(arch, channels, height, k, dropout)
        self.theta = nn.Embedding(num_users, k)
        nn.init.uniform_(self.theta.weight, 0.0, 0.01)
        self.bias = nn.Embedding(num_items, 1) if num_items else None
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)

    def forward(self, users: torch.Tensor, pos_images: torch.Tensor, neg_images: torch.Tensor,
                pos_items: torch.Tensor | None = None,
                neg_items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_uij (B,), θ rows (B, K), bias rows (2B,) or (0,)) for a batch of triples; images in [-1, 1]
        (B, C, H, W); item indices are needed when the net has biases."""
        phi = self.encoder(torch.cat([pos_images, neg_images]))
        phi_pos, phi_neg = phi.chunk(2)
        theta = self.theta(users)
        x = (theta * (phi_pos - phi_neg)).sum(dim=1)
        if self.prior is not None:
            x = x + self.prior(users, pos_items) - self.prior(users, neg_items)
        if self.bias is None:
            return x, theta, x.new_zeros(0)
        b_pos, b_neg = self.bias(pos_items).squeeze(1), self.bias(neg_items).squeeze(1)
        return x + b_pos - b_neg, theta, torch.cat([b_pos, b_neg])


def dvbpr_loss(net: DVBPRNet, x_uij: torch.Tensor, theta_rows: torch.Tensor, lambda_cnn: float, lambda_theta: float,
               data_scale: float = 1.0, bias_rows: torch.Tensor | None = None,
               lambda_bias: float = 0.0) -> tuple[torch.Tensor, float]:
    """(loss to minimise, objective value). `data_scale` multiplies the per-sample terms: under DDP with W workers
    pass W, so the averaged gradient is the gradient of the sum over the global batch plus the CNN decay once."""
    data = -F.logsigmoid(x_uij).sum() + lambda_theta * 0.5 * theta_rows.pow(2).sum()
    if bias_rows is not None and len(bias_rows):
        data = data + lambda_bias * 0.5 * bias_rows.pow(2).sum()
    decay = lambda_cnn * 0.5 * sum(w.pow(2).sum() for w in regularised_weights(net.encoder))
    return data_scale * data + decay, float(data.detach() + decay.detach())


def images_tensor(images: np.ndarray | torch.Tensor, index: np.ndarray,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Catalogue images at `index` as a float [-1, 1] NCHW tensor on `device`: from uint8 NHWC, converted per
    batch, or from `training_images` (already converted once, on the device)."""
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(index, device=images.device)]
    return torch.from_numpy(to_tensor_range(images[index])).to(device)


def training_images(images: np.ndarray, device: torch.device | str) -> np.ndarray | torch.Tensor:
    """The catalogue converted to float [-1, 1] NCHW on `device` once, when that fits in TRAINING_CACHE_BYTES;
    else the uint8 array itself (converted batch by batch)."""
    if images.size * 4 > TRAINING_CACHE_BYTES:
        return images
    return torch.from_numpy(to_tensor_range(images)).to(device)


@torch.no_grad()
def encode_catalogue(encoder: nn.Module, images: np.ndarray, index: np.ndarray | None = None,
                     device: torch.device | str = "cpu", batch_size: int = ENCODE_BATCH) -> torch.Tensor:
    """Φ of catalogue items (all, or `index`) in eval mode, batched; (n, K) float32 on the CPU."""
    was_training = encoder.training
    encoder.eval()
    index = np.arange(len(images)) if index is None else np.asarray(index)
    out = [encoder(images_tensor(images, index[lo:lo + batch_size], device)).float().cpu()
           for lo in range(0, len(index), batch_size)]
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, encoder.head[-1].out_features)


@register_recommender
class DVBPR(VisualRecommender):
    """Deep visually-aware BPR; see the module docstring."""

    kind = "dvbpr"
    needs_images = True
    distributed = True

    def __init__(self, k: int = 50, arch: str = "small", dropout: float = 0.5, lr: float = 1e-4,
                 lambda_cnn: float = 1e-3, lambda_theta: float = 1.0, batch_size: int = 128, epochs: int = 5,
                 seed: int = 0, item_bias: bool = False, lambda_bias: float = 1.0,
                 negatives_same_category: float = 0.0, count_prior: bool = False, channels_last: bool = False,
                 mixed_precision: bool = False, user_model: str = "learned"):
        if user_model not in USER_MODELS:
            raise ValueError(f"recommender.user_model={user_model!r}: use one of {USER_MODELS}")
        self.hyper = {"k": k, "arch": arch, "dropout": dropout, "lr": lr, "lambda_cnn": lambda_cnn,
                      "lambda_theta": lambda_theta, "batch_size": batch_size, "epochs": epochs, "seed": seed,
                      "item_bias": item_bias, "lambda_bias": lambda_bias,
                      "negatives_same_category": negatives_same_category, "count_prior": count_prior,
                      "channels_last": channels_last, "mixed_precision": mixed_precision, "user_model": user_model}
        self.k, self.arch, self.dropout = k, arch, dropout
        self.lr, self.lambda_cnn, self.lambda_theta = lr, lambda_cnn, lambda_theta
        self.batch_size, self.epochs, self.seed = batch_size, epochs, seed
        self.item_bias, self.lambda_bias = item_bias, lambda_bias
        self.negatives_same_category, self.count_prior = negatives_same_category, count_prior
        self.channels_last, self.mixed_precision = channels_last, mixed_precision  # speed; off = bit-exact paper
        self.user_model = user_model
        self.profiles: UserProfiles | None = None
        self._train: tuple[TrainSet, CategoryIndex] | None = None  # the profiles' interactions (build_for)
        self.shape: dict[str, Any] = {}
        self.device = torch.device("cpu")
        self.meta: dict[str, Any] = {}
        self._train_images: np.ndarray | torch.Tensor | None = None
        self._train_images_of: np.ndarray | None = None

    @classmethod
    def from_config(cls, rec) -> "DVBPR":
        return cls(rec.k, rec.arch, rec.dropout, rec.lr, rec.lambda_cnn, rec.lambda_theta, rec.batch_size,
                   rec.epochs, rec.seed, rec.item_bias, rec.lambda_bias, rec.negatives_same_category,
                   rec.count_prior, rec.channels_last, rec.mixed_precision, rec.user_model)

    def build(self, num_users: int, num_items: int, image_shape: tuple[int, int, int],
              num_categories: int = 0) -> "DVBPR":
        """Allocate θ, Φ's network and the item features for this many users and items (and categories, which
        the count prior and the profiles need)."""
        if (self.count_prior or self.user_model != "learned") and not num_categories:
            raise ValueError("recommender.count_prior and user_model=profile/ideal_point need the catalogue's categories "
                             "(build_for a catalogue)")
        self.shape = {"num_users": num_users, "num_items": num_items, "image_shape": list(image_shape),
                      "num_categories": num_categories}
        self.image_shape = tuple(image_shape)
        self.net = DVBPRNet(num_users, self.k, self.arch, self.image_shape, self.dropout,
                            num_items if self.item_bias else 0, num_categories if self.count_prior else 0,
                            num_items).to(self.device)
        if self.channels_last:
            self.net.encoder.to(memory_format=torch.channels_last)
        self.net.eval()
        self.item_phi = torch.zeros(num_items, self.k, device=self.device)
        self.profiles = UserProfiles(num_users, self.k, num_categories, num_items,
                                     self.user_model == "ideal_point").to(self.device) \
            if self.user_model != "learned" else None
        return self

    def build_for(self, catalogue) -> None:
        h, w, c = catalogue_size(catalogue)
        if h != w:
            raise ValueError(f"DVBPR takes square images; the catalogue's are {w}x{h} (set data.image_size)")
        self.build(catalogue.num_users, catalogue.num_items, (c, h, w), len(catalogue.categories))
        if self.net.prior is not None or self.profiles is not None:
            self._train = (TrainSet.from_catalogue(catalogue), CategoryIndex.from_categories(catalogue.item_category))
        if self.net.prior is not None:
            self.net.prior.fit_counts(catalogue.train_users, catalogue.train_items, catalogue.item_category)
            self.net.prior.fit_weights(*self._prior_triples())

    def _prior_triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fixed triples the count prior's and the profiles' weights are fitted on."""
        assert self._train is not None
        train, categories = self._train
        return sample_triples(train, PRIOR_TRIPLES, np.random.default_rng(self.seed), self.negatives_same_category,
                              categories)

    def triple_stream(self, catalogue) -> EpochTriples:
        """The training triples of every epoch, as `fit` and each Ray Train worker draw them."""
        return EpochTriples(TrainSet.from_catalogue(catalogue), self.seed, self.negatives_same_category,
                            CategoryIndex.from_categories(catalogue.item_category))

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def network(self) -> nn.Module:
        return self.net

    def to(self, device: torch.device | str) -> "DVBPR":
        self.device = torch.device(device)
        self.net.to(self.device)
        self.item_phi = self.item_phi.to(self.device)
        if self.profiles is not None:
            self.profiles.to(self.device)
        return self

    def freeze(self) -> None:
        self.net.eval()
        self.net.requires_grad_(False)

    def index_catalogue(self, images: np.ndarray) -> None:
        """Compute and keep Φ of every catalogue item (uint8 NHWC, in the catalogue's item order); with
        user_model=profile, refit the profiles on it."""
        if len(images) != len(self.item_phi):
            raise ValueError(f"{len(images)} images for a model of {len(self.item_phi)} items: pass the catalogue "
                             "the model was trained on")
        self.item_phi = encode_catalogue(self.net.encoder, images, device=self.device).to(self.device)
        if self.profiles is not None:
            if self._train is None:
                raise ValueError("user_model=profile needs the training interactions: build_for(catalogue) first")
            self.profiles.fit(self.item_phi, self._train[1].item_category, self._train[0], self._prior_triples())

    def train_batch(self, net: nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray, users: np.ndarray,
                    pos: np.ndarray, neg: np.ndarray, data_scale: float = 1.0) -> float:
        if self._train_images_of is not images:  # convert the catalogue once per worker
            self._train_images, self._train_images_of = training_images(images, self.device), images
        return train_step(net, optimizer, self._train_images, users, pos, neg, self, self.device, data_scale,
                          self.net)

    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        """Train in this process on a Catalogue (with images)."""
        torch.manual_seed(self.seed)
        self.build_for(catalogue)
        stream = self.triple_stream(catalogue)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        images = training_images(catalogue.images, self.device)
        history = []
        for epoch in range(self.epochs):
            began = time.perf_counter()
            users, pos, neg = stream.at(epoch)
            total = train_epoch(self.net, optimizer, images, users, pos, neg, self, self.device)
            seconds = time.perf_counter() - began
            metrics = {"epoch": epoch, "loss": total / len(users), "seconds": seconds,
                       "triples_per_s": len(users) / max(seconds, 1e-9)}
            history.append(metrics)
            if on_epoch:
                on_epoch(metrics)
        self.net.eval()
        self.index_catalogue(catalogue.images)
        return history

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> torch.Tensor:
        """θ_u·Φ_i (plus the count prior and β_i when on): how real items are ranked. Designs climb the visual
        score alone (`design_vectors`)."""
        users_t = torch.as_tensor(np.asarray(users), device=self.device)
        index = slice(None) if items is None else torch.as_tensor(np.asarray(items), device=self.device)
        if self.profiles is not None:
            scores = self.profiles.matrix(users_t, index, self.item_phi)
        else:
            scores = self.net.theta.weight.detach()[users_t] @ self.item_phi[index].T
            if self.net.prior is not None:
                with torch.no_grad():
                    scores = scores + self.net.prior.matrix(users_t, index)
        if self.net.bias is not None:
            scores = scores + self.net.bias.weight.detach()[index, 0]
        return scores

    def user_vectors(self) -> torch.Tensor:
        if self.profiles is not None:
            return self.profiles.vectors(torch.arange(len(self.profiles.total), device=self.device))
        return self.net.theta.weight.detach()

    def item_features(self) -> torch.Tensor:
        return self.item_phi

    def design_vectors(self, users: torch.Tensor, categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.profiles is not None:
            return self.profiles.design_vectors(users, categories)
        return super().design_vectors(users, categories)

    def design_curvature(self, categories: torch.Tensor) -> torch.Tensor | None:
        if self.profiles is not None and self.profiles.ideal_point:
            return self.profiles.design_curvature(categories)
        return None

    def refit_users(self, users: np.ndarray, train: TrainSet) -> bool:
        if self.profiles is None:
            return False
        self.profiles.refit(users, train, self.item_phi)
        return True

    def set_user_vectors(self, users: np.ndarray, vectors: torch.Tensor) -> None:
        if self.profiles is not None:
            raise NotImplementedError("user_model=profile computes user vectors from interactions: use refit_users")
        with torch.no_grad():
            self.net.theta.weight[torch.as_tensor(np.asarray(users), device=self.device)] = vectors.to(self.device)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        self.net.encoder.eval()
        return self.net.encoder(images)

    def checkpoint_payload(self) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        return {"kind": self.kind, "config": {**self.hyper, **self.shape},
                "state": {"net": state, "item_phi": self.item_phi.detach().cpu(),
                          **({"profiles": {k: v.detach().cpu() for k, v in self.profiles.state_dict().items()}}
                             if self.profiles is not None else {})},
                "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "DVBPR":
        cfg = dict(payload["config"])
        shape = [cfg.pop(key) for key in ("num_users", "num_items", "image_shape")]
        categories = cfg.pop("num_categories", 0)
        model = cls(**cfg).build(shape[0], shape[1], tuple(shape[2]), categories)
        model.net.load_state_dict(payload["state"]["net"])
        model.item_phi = payload["state"]["item_phi"].float()
        if model.profiles is not None:  # models saved before the per-dimension weights have none: all ones
            model.profiles.load_state_dict({"dim_weight": torch.ones(model.k), "curvature": torch.zeros(model.k),
                                            **payload["state"]["profiles"]})
        model.meta = dict(payload.get("meta") or {})
        model.net.eval()
        return model


def catalogue_size(catalogue) -> tuple[int, int, int]:
    """(H, W, C) of a catalogue's images from its metadata (works when images were not loaded)."""
    image = catalogue.meta["image"]
    return image["height"], image["width"], 3 if image["mode"] == "RGB" else 1


def train_epoch(net: nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray, users: np.ndarray,
                pos: np.ndarray, neg: np.ndarray, rec, device: torch.device | str, data_scale: float = 1.0,
                module: DVBPRNet | None = None) -> float:
    """One pass over the given triples in batches of rec.batch_size; returns the summed objective. `net` may be a
    DDP wrapper of `module`; `rec` is anything with batch_size, lambda_cnn and lambda_theta (a DVBPR)."""
    module = module or net
    net.train()
    total = 0.0
    for lo in range(0, len(users), rec.batch_size):
        total += train_step(net, optimizer, images, users[lo:lo + rec.batch_size], pos[lo:lo + rec.batch_size],
                            neg[lo:lo + rec.batch_size], rec, device, data_scale, module)
    return total


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray, users, pos, neg, rec,
               device: torch.device | str, data_scale: float = 1.0, module: DVBPRNet | None = None) -> float:
    """One Adam step on a batch of triples (index arrays or tensors); returns the batch objective."""
    module = module or net
    device = torch.device(device)
    users_t = torch.as_tensor(np.asarray(users), dtype=torch.long, device=device)
    pos_t = torch.as_tensor(np.asarray(pos), dtype=torch.long, device=device)
    neg_t = torch.as_tensor(np.asarray(neg), dtype=torch.long, device=device)
    pos_x, neg_x = images_tensor(images, np.asarray(pos), device), images_tensor(images, np.asarray(neg), device)
    if getattr(rec, "channels_last", False):
        pos_x, neg_x = (x.contiguous(memory_format=torch.channels_last) for x in (pos_x, neg_x))
    bf16 = getattr(rec, "mixed_precision", False) and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        x_uij, theta_rows, bias_rows = net(users_t, pos_x, neg_x, pos_t, neg_t)
    x_uij, theta_rows, bias_rows = x_uij.float(), theta_rows.float(), bias_rows.float()
    loss, objective = dvbpr_loss(module, x_uij, theta_rows, rec.lambda_cnn, rec.lambda_theta, data_scale,
                                 bias_rows, rec.lambda_bias)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return objective
