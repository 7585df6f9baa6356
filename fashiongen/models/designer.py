"""The amortised designer A(v, b, c) -> R latents (#15): one forward pass instead of a latent search per pair.

The preference engine climbs, for each (user, category) pair, R latents for T steps of G -> Φ -> D. The designer
learns that map once, across users and categories: given the pair's design vector v and offset b
(`VisualRecommender.design_vectors`, what the engine's score is v · Φ(G(z, c)) + b of) and the category c, it
returns R latents, trained to maximise the engine's own objective (`PreferenceEngine.latent_objective`), with a
prior term that keeps each latent on the shell where z0 is drawn (|z|² / L = init_std², where G was trained) and a
repulsion term that keeps a pair's R latents apart (so a pair still gets distinct designs).

    designer = AmortisedDesigner(vector_dim=K, num_categories=C, latent_dim=L, restarts=R)
    z = designer(v, b, c)                      # (P, R, L), deterministic: no noise, eval mode
    designer.bind(recommender, generator)      # records the spaces it was trained in
    designer.check_compatible(recommender, generator)   # DesignerError for another recommender or generator

Compatibility is keyed by the recommender's *space* (a digest of its item features Φ, fixed by the image network)
and the generator's version, not the recommender's model_version: the nightly refresh moves a few users' vectors
(a new model_version) without changing the space, so the designer keeps serving; a retrained image network or
generator needs a new designer. Pure torch, no Ray.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from fashiongen.errors import FashiongenError
from fashiongen.models.contract import Checkpointed, read_checkpoint

KIND = "designer"


class DesignerError(FashiongenError, ValueError):
    """A designer that does not fit the models it is asked to design with; the message says what to retrain."""


def recommender_space(recommender) -> str:
    """Digest of a visual recommender's item features Φ: what changes when its image network does."""
    phi = recommender.item_features().detach().cpu().float().contiguous().numpy()
    return hashlib.sha256(np.ascontiguousarray(phi).tobytes()).hexdigest()[:16]


class AmortisedDesigner(nn.Module, Checkpointed):
    """MLP over [v / |v|, log |v|, b] plus a category embedding, then one learned slot per restart: R latents."""

    kind = KIND

    def __init__(self, vector_dim: int, num_categories: int, latent_dim: int, restarts: int, hidden: int = 256):
        super().__init__()
        self.config = {"vector_dim": vector_dim, "num_categories": num_categories, "latent_dim": latent_dim,
                       "restarts": restarts, "hidden": hidden}
        self.meta: dict[str, Any] = {}
        self.model_version = ""
        self.inp = nn.Linear(vector_dim + 2, hidden)
        self.category = nn.Embedding(num_categories, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.slots = nn.Parameter(torch.randn(restarts, hidden, generator=torch.Generator().manual_seed(0)) * 0.5)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, latent_dim))

    @property
    def restarts(self) -> int:
        return int(self.config["restarts"])

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    def forward(self, vectors: torch.Tensor, offsets: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """(P, K) vectors, (P,) offsets, (P,) category indices -> (P, R, L) latents."""
        norm = vectors.norm(dim=1, keepdim=True).clamp(min=1e-8)
        x = torch.cat([vectors / norm, norm.log(), offsets.reshape(-1, 1)], dim=1)
        h = self.body(self.inp(x) + self.category(categories))
        return self.head(h[:, None, :] + self.slots[None])

    # ------------------------------------------------------------------ compatibility
    def bind(self, recommender, generator) -> None:
        """Record the recommender space and generator this designer is (being) trained for."""
        self.meta.update({"recommender_space": recommender_space(recommender),
                          "generator_version": generator.model_version,
                          "recommender_version": recommender.model_version})

    def check_compatible(self, recommender, generator) -> None:
        space = recommender_space(recommender)
        if self.meta.get("recommender_space") != space:
            raise DesignerError(f"designer {self.model_version or '(unsaved)'} was trained for another recommender "
                                f"space ({self.meta.get('recommender_space')!r}, this recommender's is {space!r}: its "
                                "image network changed): retrain it with fashiongen train-designer, or design with "
                                "design.mode=optimise")
        if self.meta.get("generator_version") != generator.model_version:
            raise DesignerError(f"designer {self.model_version or '(unsaved)'} was trained for generator "
                                f"{self.meta.get('generator_version')!r}, not {generator.model_version!r}: retrain it "
                                "with fashiongen train-designer, or design with design.mode=optimise")
        if int(self.config["vector_dim"]) != recommender.user_vectors().shape[1] \
                or self.latent_dim != int(generator.latent_dim):
            raise DesignerError("designer shapes do not match the recommender's vectors or the generator's latents: "
                                "retrain it")

    # ------------------------------------------------------------------ checkpoint contract
    def checkpoint_payload(self) -> dict[str, Any]:
        return {"kind": KIND, "config": dict(self.config), "meta": dict(self.meta),
                "state": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "AmortisedDesigner":
        model = cls(**payload["config"])
        model.load_state_dict(payload["state"])
        model.meta = dict(payload.get("meta") or {})
        model.model_version = payload.get("model_version", "")
        return model.eval()


def load_designer(uri: str) -> AmortisedDesigner:
    """A saved designer (weights_only load); DesignerError when the file is another kind of checkpoint."""
    payload = read_checkpoint(uri)
    if payload["kind"] != KIND:
        raise DesignerError(f"{uri!r} holds a {payload['kind']!r} checkpoint, not a designer: point "
                            "generation.designer_uri at the file fashiongen train-designer wrote")
    return AmortisedDesigner.from_payload(payload)
