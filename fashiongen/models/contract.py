"""The model contracts the batch jobs call without knowing a model's class.

A checkpoint is one file holding only tensors and plain Python values, loaded with
`torch.load(..., weights_only=True)`:

    {"kind": "dvbpr", "config": {...}, "state": {...tensors...}, "meta": {...}, "model_version": "..."}

`load_recommender(uri)` / `load_generator(uri)` read `kind` and dispatch through the registry.
"""
from __future__ import annotations

import abc
import hashlib
import io
from typing import Any, ClassVar

import numpy as np
import torch

from fashiongen import storage
from fashiongen.errors import FashiongenError

RECOMMENDERS: dict[str, type["Recommender"]] = {}
GENERATORS: dict[str, type["ConditionalGenerator"]] = {}


class CheckpointError(FashiongenError, RuntimeError):
    """A checkpoint that is missing, of the wrong kind or unreadable; the message says what to do."""


def register_recommender(cls: type["Recommender"]) -> type["Recommender"]:
    RECOMMENDERS[cls.kind] = cls
    return cls


def register_generator(cls: type["ConditionalGenerator"]) -> type["ConditionalGenerator"]:
    GENERATORS[cls.kind] = cls
    return cls


def save_checkpoint(uri: str, payload: dict[str, Any]) -> str:
    """Write a checkpoint atomically; returns its model_version (a content hash of the state)."""
    buf = io.BytesIO()
    torch.save(payload["state"], buf)
    version = payload.get("model_version") or f"{payload['kind']}-{hashlib.sha256(buf.getvalue()).hexdigest()[:12]}"
    out = io.BytesIO()
    torch.save({**payload, "model_version": version}, out)
    storage.write_bytes(uri, out.getvalue())
    return version


def require_checkpoint(uri: str) -> None:
    """Raise CheckpointError saying what to do when there is no checkpoint at `uri`."""
    if not storage.exists(uri):
        raise CheckpointError(f"no checkpoint at {uri!r}: train the model first (fashiongen train-recommender / "
                              "train-gan) or point the config at an existing checkpoint")


def read_checkpoint(uri: str) -> dict[str, Any]:
    """Load a checkpoint file with `weights_only=True` (no arbitrary code runs on load)."""
    require_checkpoint(uri)
    try:
        payload = torch.load(io.BytesIO(storage.read_bytes(uri)), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"checkpoint {uri!r} is unreadable ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(payload, dict) or "kind" not in payload or "state" not in payload:
        raise CheckpointError(f"{uri!r} is not a fashiongen checkpoint (no 'kind'/'state')")
    return payload


class Recommender(abc.ABC):
    """Fit / score / vectors / save / load. Users and items are dense indices of a `Catalogue`."""

    kind: ClassVar[str]
    visual: ClassVar[bool] = False  # True when `encode_images` scores any image (DVBPR)

    model_version: str = ""

    @abc.abstractmethod
    def fit(self, catalogue, cfg, on_epoch=None) -> list[dict]:
        """Train in-process on a Catalogue; `on_epoch(metrics)` is called after each epoch. Returns metrics per epoch."""

    @abc.abstractmethod
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> torch.Tensor:
        """Preference scores, shape (len(users), len(items)); items=None means every item."""

    @abc.abstractmethod
    def user_vectors(self) -> torch.Tensor:
        """θ: (num_users, K) float32."""

    @abc.abstractmethod
    def item_features(self) -> torch.Tensor:
        """Φ of every catalogue item: (num_items, K) float32 (for non-visual models, their item factors)."""

    def set_user_vectors(self, users: np.ndarray, vectors: torch.Tensor) -> None:
        """Replace θ of `users` (the nightly refresh). Only models scored as θ_u · Φ_i support it."""
        raise NotImplementedError(f"{self.kind} cannot refresh user vectors on their own: retrain it, or use dvbpr")

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable Φ(images) for images in [-1, 1], (N, C, H, W) -> (N, K). Visual models only."""
        raise NotImplementedError(f"{self.kind} cannot score new images; use a visual model such as dvbpr")

    @abc.abstractmethod
    def checkpoint_payload(self) -> dict[str, Any]:
        """{"kind", "config", "state", "meta"} with tensors and plain values only."""

    @classmethod
    @abc.abstractmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Recommender":
        """Rebuild from `checkpoint_payload` output."""

    def save(self, uri: str) -> str:
        self.model_version = save_checkpoint(uri, self.checkpoint_payload())
        return self.model_version


def load_recommender(uri: str) -> Recommender:
    payload = read_checkpoint(uri)
    cls = RECOMMENDERS.get(payload["kind"])
    if cls is None:
        raise CheckpointError(f"{uri!r} holds a {payload['kind']!r} model, not a recommender ({sorted(RECOMMENDERS)})")
    model = cls.from_payload(payload)
    model.model_version = payload["model_version"]
    return model


class ConditionalGenerator(abc.ABC):
    """G(z, c) -> image in [-1, 1]; D(x, c) -> realism score (LSGAN: 1 = real). Both in eval mode, on `device`."""

    kind: ClassVar[str]
    model_version: str = ""
    latent_dim: int
    categories: list[str]
    image_shape: tuple[int, int, int]  # (C, H, W)

    @abc.abstractmethod
    def generate(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) float, (N,) long -> (N, C, H, W) in [-1, 1]; differentiable in z."""

    @abc.abstractmethod
    def discriminate(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W), (N,) long -> (N,) realism score; differentiable in x."""

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> "ConditionalGenerator":
        """Move both networks; returns self."""

    @abc.abstractmethod
    def checkpoint_payload(self) -> dict[str, Any]:
        """{"kind", "config", "state", "meta"} with tensors and plain values only."""

    @classmethod
    @abc.abstractmethod
    def from_payload(cls, payload: dict[str, Any]) -> "ConditionalGenerator":
        """Rebuild from `checkpoint_payload` output (eval mode)."""

    def save(self, uri: str) -> str:
        self.model_version = save_checkpoint(uri, self.checkpoint_payload())
        return self.model_version


def load_generator(uri: str) -> ConditionalGenerator:
    payload = read_checkpoint(uri)
    cls = GENERATORS.get(payload["kind"])
    if cls is None:
        raise CheckpointError(f"{uri!r} holds a {payload['kind']!r} model, not a generator ({sorted(GENERATORS)})")
    model = cls.from_payload(payload)
    model.model_version = payload["model_version"]
    return model
