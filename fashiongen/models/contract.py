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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from fashiongen import storage
from fashiongen.errors import FashiongenError

if TYPE_CHECKING:
    from fashiongen.config import RecommenderConfig
    from fashiongen.models.bpr import EpochTriples

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


class Checkpointed(abc.ABC):
    """A model saved as one contract checkpoint; `model_version` is the content hash `save` returns."""

    kind: ClassVar[str]
    model_version: str = ""

    @abc.abstractmethod
    def checkpoint_payload(self) -> dict[str, Any]:
        """{"kind", "config", "state", "meta"} with tensors and plain values only."""

    @classmethod
    @abc.abstractmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Checkpointed":
        """Rebuild from `checkpoint_payload` output (eval mode)."""

    def save(self, uri: str) -> str:
        self.model_version = save_checkpoint(uri, self.checkpoint_payload())
        return self.model_version


class Recommender(Checkpointed):
    """Fit / score / vectors / save / load. Users and items are dense indices of a `Catalogue`.

    Hyper-parameters go to the constructor (`from_config` maps the config's recommender section onto it); `fit`
    sizes the model from the catalogue. The class attributes say what the training driver must do; adding a model
    is one new module under fashiongen/models/ that defines a registered subclass.
    """

    needs_images: ClassVar[bool] = False  # fit reads the catalogue's images
    distributed: ClassVar[bool] = False  # trained with Ray Train (see the distributed hooks below), else in-process
    visual: ClassVar[bool] = False  # a VisualRecommender: scores any image

    meta: dict[str, Any]

    @classmethod
    @abc.abstractmethod
    def from_config(cls, rec: RecommenderConfig) -> "Recommender":
        """A fresh, unfitted model with the hyper-parameters of the config's recommender section."""

    @abc.abstractmethod
    def fit(self, catalogue, on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
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

    def refit_users(self, users: np.ndarray, train) -> bool:
        """Recompute the vectors of `users` in closed form from their items in `train` (a TrainSet), when the model
        defines them so; False means the nightly refresh fits them by SGD and calls `set_user_vectors`."""
        return False

    def set_user_vectors(self, users: np.ndarray, vectors: torch.Tensor) -> None:
        """Replace θ of `users` (the nightly refresh). Only models scored as θ_u · Φ_i support it."""
        raise NotImplementedError(f"{self.kind} cannot refresh user vectors on their own: retrain it, or use dvbpr")

    # Distributed training hooks (distributed = True): the Ray Train loop of fashiongen.training.recommender
    # wraps `network()` in DDP and calls `train_batch` per batch of triples on every worker.
    def build_for(self, catalogue) -> None:
        """Allocate the parameters for a catalogue (before loading a checkpoint's state or training)."""
        raise NotImplementedError(f"{self.kind} is not trained with Ray Train")

    def network(self) -> torch.nn.Module:
        """The module whose parameters distributed training optimises (and checkpoints)."""
        raise NotImplementedError(f"{self.kind} is not trained with Ray Train")

    def triple_stream(self, catalogue) -> EpochTriples:
        """The training triples of every epoch (each worker takes its shard of an epoch)."""
        raise NotImplementedError(f"{self.kind} is not trained with Ray Train")

    def train_batch(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, images: np.ndarray,
                    users: np.ndarray, pos: np.ndarray, neg: np.ndarray, data_scale: float = 1.0) -> float:
        """One optimiser step on a batch of triples with `net` (`network()` or its DDP wrapper); the objective."""
        raise NotImplementedError(f"{self.kind} is not trained with Ray Train")

    def index_catalogue(self, images: np.ndarray) -> None:
        """Recompute the item features from the catalogue's images (after the network changed)."""
        raise NotImplementedError(f"{self.kind} has no image network to index the catalogue with")


class VisualRecommender(Recommender):
    """A recommender that scores any image, θ_u · Φ(image): what preference maximisation climbs."""

    visual: ClassVar[bool] = True
    image_shape: tuple[int, int, int]  # (C, H, W) that `encode_images` takes

    @abc.abstractmethod
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable Φ(images) for images in [-1, 1], (N, C, H, W) -> (N, K), in eval mode."""

    def design_vectors(self, users: torch.Tensor, categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The visual score of each (user, category) pair: (v (P, K), b (P,)) such that v · Φ(x) + b scores an image x
        of that category, a new design or catalogue item alike (no prior or item bias). Default: θ_u and 0, the
        paper's x_ui = θ_u · Φ_i."""
        theta = self.user_vectors()[users]
        return theta, theta.new_zeros(len(theta))

    def design_curvature(self, categories: torch.Tensor) -> torch.Tensor | None:
        """a (P, K) ≥ 0 when the visual score is v · Φ(x) + b − a · Φ(x)² (a user side with a sweet spot), None when
        it is affine in Φ (the paper's)."""
        return None

    def score_terms(self, users: torch.Tensor, categories: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(v, b, a) of each pair's visual score (`visual_score`), float32: `design_vectors` and
        `design_curvature`."""
        vectors, offsets = self.design_vectors(users, categories)
        curvature = self.design_curvature(categories)
        return vectors.float(), offsets.float(), None if curvature is None else curvature.float()

    @abc.abstractmethod
    def to(self, device: torch.device | str) -> "VisualRecommender":
        """Move the networks and item features; returns self."""

    @abc.abstractmethod
    def freeze(self) -> None:
        """Eval mode and no parameter gradients, so backward reaches only the inputs (the latents)."""


def visual_score(phi: torch.Tensor, vectors: torch.Tensor, offsets: torch.Tensor,
                 curvature: torch.Tensor | None) -> torch.Tensor:
    """v · Φ + b − a · Φ² of one image per pair: Φ (P, K), v (P, K), b (P,), a (P, K) or None -> (P,)."""
    score = (vectors * phi).sum(dim=-1) + offsets
    return score if curvature is None else score - (curvature * phi * phi).sum(dim=-1)


def visual_score_matrix(item_phi: torch.Tensor, vectors: torch.Tensor, offsets: torch.Tensor,
                        curvature: torch.Tensor | None) -> torch.Tensor:
    """The same score of every item for every pair: Φ (N, K) or (P, N, K) -> (P, N)."""
    if item_phi.dim() == 2:
        score = vectors @ item_phi.T + offsets[:, None]
        return score if curvature is None else score - curvature @ (item_phi * item_phi).T
    score = (vectors[:, None, :] * item_phi).sum(-1) + offsets[:, None]
    return score if curvature is None else score - (curvature[:, None, :] * item_phi * item_phi).sum(-1)


def recommender_class(kind: str) -> type[Recommender]:
    """The registered recommender `kind`; FashiongenError naming the known ones otherwise."""
    import fashiongen.models  # noqa: F401  (imports every model module, which registers it)

    if kind not in RECOMMENDERS:
        raise FashiongenError(f"recommender.model={kind!r} is not a recommender: use one of {sorted(RECOMMENDERS)}")
    return RECOMMENDERS[kind]


def _load(uri: str, registry: dict[str, type[Checkpointed]], what: str) -> Checkpointed:
    import fashiongen.models  # noqa: F401  (registers every model)

    payload = read_checkpoint(uri)
    cls = registry.get(payload["kind"])
    if cls is None:
        raise CheckpointError(f"{uri!r} holds a {payload['kind']!r} model, not a {what} ({sorted(registry)})")
    model = cls.from_payload(payload)
    model.model_version = payload["model_version"]
    return model


def load_recommender(uri: str) -> Recommender:
    return _load(uri, RECOMMENDERS, "recommender")  # type: ignore[return-value]


class ConditionalGenerator(Checkpointed):
    """G(z, c) -> image in [-1, 1]; D(x, c) -> realism on the LSGAN scale (1 = real, 0 = generated), whatever loss
    trained D, so the design objective's η·(realism − 1)² means the same for every generator. Both in eval mode,
    on `device`. Latents are drawn by `sample_latents` (N(0, I), optionally truncated)."""

    latent_dim: int
    categories: list[str]
    image_shape: tuple[int, int, int]  # (C, H, W)
    device: torch.device = torch.device("cpu")

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
    def freeze(self) -> None:
        """Eval mode and no parameter gradients (BatchNorm uses running statistics; backward reaches z only)."""


def sample_latents(n: int, dim: int, truncation: float = 0.0, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, dim) draws of N(0, I); with `truncation` t > 0 every coordinate outside [-t, t] is redrawn (the
    truncation trick of BigGAN: fewer, more typical images). t = 0 is the plain prior and draws exactly
    `torch.randn(n, dim, generator=generator)`."""
    z = torch.randn(n, dim, generator=generator, device=device)
    if truncation > 0:
        outside = z.abs() > truncation
        while outside.any():
            z = torch.where(outside, torch.randn(n, dim, generator=generator, device=device), z)
            outside = z.abs() > truncation
    return z


def load_generator(uri: str) -> ConditionalGenerator:
    return _load(uri, GENERATORS, "generator")  # type: ignore[return-value]
