"""A small category classifier trained on the catalogue's own images and categories.

It never sees interactions, so its penultimate features are "off-the-shelf" visual features in the
sense VBPR needs (no pretrained ImageNet weights can be downloaded here), and they are the feature
space of the in-domain image-quality metrics (FID/KID/class consistency) — in-domain numbers, not
comparable with Inception-based FID.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from fashiongen import storage
from fashiongen.data.images import to_tensor_range
from fashiongen.models.contract import CheckpointError


class CategoryClassifier(nn.Module):
    """Three conv blocks of `width`, 2x and 4x channels -> global average pool -> `feature_dim` features -> category
    logits. Its cost goes with width squared (the design guard's forward and backward run at every search step)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, feature_dim: int = 128,
                 width: int = 32):
        super().__init__()
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size,
                       "feature_dim": feature_dim, "width": width}
        self.meta: dict = {}  # what it was trained on (save_classifier's meta)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(in_channels, width), block(width, 2 * width), block(2 * width, 4 * width),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4 * width, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1], (N, C, H, W) -> (N, feature_dim) penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict_features(self, images: np.ndarray | torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Features of uint8 NHWC arrays or [-1, 1] NCHW tensors, batched, in eval mode."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = torch.from_numpy(to_tensor_range(chunk)) if isinstance(chunk, np.ndarray) else chunk
            out.append(self.features(x.to(device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.config["feature_dim"])


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int = 2, batch_size: int = 256,
                     seed: int = 0, device: str = "cpu", lr: float = 2e-3, width: int = 32) -> CategoryClassifier:
    """Fit on uint8 NHWC images and integer labels with Adam + cross-entropy; returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n, h, _, c = images.shape
    model = CategoryClassifier(c, int(labels.max()) + 1, h, width=width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).numpy()
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = torch.from_numpy(to_tensor_range(images[idx])).to(device)
            loss = nn.functional.cross_entropy(model(x), y_all[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def save_classifier(model: CategoryClassifier, uri: str, meta: dict | None = None) -> None:
    """Write the classifier; `meta` (plain values, e.g. what it was trained on) comes back as `model.meta`."""
    buf = io.BytesIO()
    torch.save({"kind": "category-classifier", "config": model.config, "meta": dict(meta or {}),
                "state": {k: v.cpu() for k, v in model.state_dict().items()}}, buf)
    storage.write_bytes(uri, buf.getvalue())


def load_classifier(uri: str) -> CategoryClassifier:
    if not storage.exists(uri):
        raise CheckpointError(f"no classifier checkpoint at {uri!r}: train it first")
    payload = torch.load(io.BytesIO(storage.read_bytes(uri)), map_location="cpu", weights_only=True)
    if payload.get("kind") != "category-classifier":
        raise CheckpointError(f"{uri!r} is not a category-classifier checkpoint")
    model = CategoryClassifier(**payload["config"])
    model.load_state_dict(payload["state"])
    model.meta = payload.get("meta", {})
    return model.eval()


def trained_on(catalogue_meta: dict) -> dict:
    """The record of the catalogue a classifier was trained on, from the catalogue's metadata (catalogue.json):
    saved as the classifier's meta, checked when it is loaded."""
    return {"categories": list(catalogue_meta["categories"]), "items": int(catalogue_meta["counts"]["items"])}


def load_catalogue_classifier(uri: str, catalogue_record: dict, role: str) -> CategoryClassifier:
    """The catalogue's `role` classifier at `uri`; a one-line error naming the step that trains it when it is
    missing or was trained on another catalogue (`trained_on` record)."""
    fix = "run `fashiongen train-classifiers` (the demo and the nightly run do)"
    if not storage.exists(uri):
        raise CheckpointError(f"no {role} category classifier at {uri!r}: {fix}")
    model = load_classifier(uri)
    if {k: model.meta.get(k) for k in catalogue_record} != catalogue_record:
        raise CheckpointError(f"the {role} category classifier at {uri!r} was trained on another catalogue "
                              f"({model.meta.get('items')} items): {fix}")
    return model
