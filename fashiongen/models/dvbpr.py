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
from fashiongen.models.bpr import TrainSet, sample_triples
from fashiongen.models.cnn import build_encoder, regularised_weights
from fashiongen.models.contract import VisualRecommender, register_recommender

ENCODE_BATCH = 512


class DVBPRNet(nn.Module):
    """θ (an embedding of users) and the image encoder Φ; forward gives x_uij = θ_u·(Φ(X_i) − Φ(X_j))."""

    def __init__(self, num_users: int, k: int, arch: str, image_shape: tuple[int, int, int], dropout: float = 0.5):
        super().__init__()
        channels, height, _ = image_shape
        self.encoder = build_encoder(arch, channels, height, k, dropout)
        self.theta = nn.Embedding(num_users, k)
        nn.init.uniform_(self.theta.weight, 0.0, 0.01)

    def forward(self, users: torch.Tensor, pos_images: torch.Tensor,
                neg_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_uij (B,), θ rows (B, K)) for a batch of triples; images in [-1, 1] (B, C, H, W)."""
        phi = self.encoder(torch.cat([pos_images, neg_images]))
        phi_pos, phi_neg = phi.chunk(2)
        theta = self.theta(users)
        return (theta * (phi_pos - phi_neg)).sum(dim=1), theta


def dvbpr_loss(net: DVBPRNet, x_uij: torch.Tensor, theta_rows: torch.Tensor, lambda_cnn: float, lambda_theta: float,
               data_scale: float = 1.0) -> tuple[torch.Tensor, float]:
    """(loss to minimise, objective value). `data_scale` multiplies the per-sample terms: under DDP with W workers
    pass W, so the averaged gradient is the gradient of the sum over the global batch plus the CNN decay once."""
    data = -F.logsigmoid(x_uij).sum() + lambda_theta * 0.5 * theta_rows.pow(2).sum()
    decay = lambda_cnn * 0.5 * sum(w.pow(2).sum() for w in regularised_weights(net.encoder))
    return data_scale * data + decay, float(data.detach() + decay.detach())


def images_tensor(images: np.ndarray, index: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Catalogue images at `index` (uint8 NHWC) as a float [-1, 1] NCHW tensor on `device`."""
    return torch.from_numpy(to_tensor_range(images[index])).to(device)


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
                 seed: int = 0):
        self.hyper = {"k": k, "arch": arch, "dropout": dropout, "lr": lr, "lambda_cnn": lambda_cnn,
                      "lambda_theta": lambda_theta, "batch_size": batch_size, "epochs": epochs, "seed": seed}
        self.k, self.arch, self.dropout = k, arch, dropout
        self.lr, self.lambda_cnn, self.lambda_theta = lr, lambda_cnn, lambda_theta
        self.batch_size, self.epochs, self.seed = batch_size, epochs, seed
        self.shape: dict[str, Any] = {}
        self.device = torch.device("cpu")
        self.meta: dict[str, Any] = {}

    @classmethod
    def from_config(cls, rec) -> "DVBPR":
        return cls(rec.k, rec.arch, rec.dropout, rec.lr, rec.lambda_cnn, rec.lambda_theta, rec.batch_size,
                   rec.epochs, rec.seed)

    def build(self, num_users: int, num_items: int, image_shape: tuple[int, int, int]) -> "DVBPR":
        """Allocate θ, Φ's network and the item features for this many users and items."""
        self.shape = {"num_users": num_users, "num_items": num_items, "image_shape": list(image_shape)}
        self.image_shape = tuple(image_shape)
        self.net = DVBPRNet(num_users, self.k, self.arch, self.image_shape, self.dropout).to(self.device)
        self.net.eval()
        self.item_phi = torch.zeros(num_items, self.k, device=self.device)
        return self

    def build_for(self, catalogue) -> None:
        h, w, c = catalogue_size(catalogue)
        if h != w:
            raise ValueError(f"DVBPR takes square images; the catalogue's are {w}x{h} (set data.image_size)")
        self.build(catalogue.num_users, catalogue.num_items, (c, h, w))

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def network(self) -> nn.Module:
        return self.net

    def to(self, device: torch.device | str) -> "DVBPR":
        self.device = torch.device(device)
        self.net.to(self.device)
        self.item_phi = self.item_phi.to(self.device)
        return self

    def freeze(self) -> None:
        self.net.eval()
        self.net.requires_grad_(False)

    def index_catalogue(self, images: np.ndarray) -> None:
        """Compute and keep Φ of every catalogue item (uint8 NHWC, in the catalogue's item order)."""
        if len(images) != len(self.item_phi):
            raise ValueError(f"{len(images)} images for a model of {len(self.item_phi)} items: pass the catalogue "
                             "the model was trained on")
        self.item_phi = encode_catalogue(self.net.encoder, images, device=self.device).to(self.device)

    def train_batch(self, net: nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray, users: np.ndarray,
                    pos: np.ndarray, neg: np.ndarray, data_scale: float = 1.0) -> float:
        return train_step(net, optimizer, images, users, pos, neg, self, self.device, data_scale, self.net)

    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
        """Train in this process on a Catalogue (with images)."""
        torch.manual_seed(self.seed)
        self.build_for(catalogue)
        rng = np.random.default_rng(self.seed)
        train = TrainSet.from_catalogue(catalogue)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        history = []
        for epoch in range(self.epochs):
            began = time.perf_counter()
            users, pos, neg = sample_triples(train, train.num_interactions, rng)
            total = train_epoch(self.net, optimizer, catalogue.images, users, pos, neg, self, self.device)
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
        theta = self.net.theta.weight.detach()[torch.as_tensor(np.asarray(users), device=self.device)]
        phi = self.item_phi if items is None else self.item_phi[torch.as_tensor(np.asarray(items), device=self.device)]
        return theta @ phi.T

    def user_vectors(self) -> torch.Tensor:
        return self.net.theta.weight.detach()

    def item_features(self) -> torch.Tensor:
        return self.item_phi

    def set_user_vectors(self, users: np.ndarray, vectors: torch.Tensor) -> None:
        with torch.no_grad():
            self.net.theta.weight[torch.as_tensor(np.asarray(users), device=self.device)] = vectors.to(self.device)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        self.net.encoder.eval()
        return self.net.encoder(images)

    def checkpoint_payload(self) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        return {"kind": self.kind, "config": {**self.hyper, **self.shape},
                "state": {"net": state, "item_phi": self.item_phi.detach().cpu()}, "meta": dict(self.meta)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "DVBPR":
        cfg = dict(payload["config"])
        shape = [cfg.pop(key) for key in ("num_users", "num_items", "image_shape")]
        model = cls(**cfg).build(shape[0], shape[1], tuple(shape[2]))
        model.net.load_state_dict(payload["state"]["net"])
        model.item_phi = payload["state"]["item_phi"].float()
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
    users_t = torch.as_tensor(np.asarray(users), dtype=torch.long, device=device)
    x_uij, theta_rows = net(users_t, images_tensor(images, np.asarray(pos), device),
                            images_tensor(images, np.asarray(neg), device))
    loss, objective = dvbpr_loss(module, x_uij, theta_rows, rec.lambda_cnn, rec.lambda_theta, data_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return objective
