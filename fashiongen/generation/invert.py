"""Design from an existing item: fit a latent to a real item's image, then move it toward a user's taste.

    fit = invert_images(generator, item_images, category_idx, settings)       # z_item, reconstruction error
    path = redesign_items(objective, user_idx, fit, category_idx, settings)    # trajectory of images and scores

Inversion minimises the per-pixel mean squared error ‖G(z, c) − x‖² in [-1, 1] with Adam from
`invert_restarts` starts z0 ~ N(0, init_std²) and keeps each item's best restart. The redesign then maximises

    θ_u · Φ(G(z, c)) − η · (D(G(z, c), c) − 1)² − λ · ‖z − z_item‖²        (λ = generation.proximity)

from z = z_item for `steps` Adam steps (generation.lr), recording every step. Latents are unbounded here: the
proximity term already keeps z near the item. Every item is optimised independently of the others in the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fashiongen.config import DesignConfig
from fashiongen.data.images import to_tensor_range
from fashiongen.generation.engine import DesignObjective, EngineError, image_adapter, to_uint8_nhwc
from fashiongen.models.contract import ConditionalGenerator


@dataclass
class Inversion:
    """Best latent per item (N, L), its reconstruction error (N,) and image (N, H, W, C) uint8."""

    latent: np.ndarray
    reconstruction_error: np.ndarray
    image: np.ndarray


@dataclass
class Redesign:
    """Per item and step (N, T+1, ...): image uint8, score θ·Φ, realism D, distance ‖z − z_item‖, latent."""

    image: np.ndarray
    score: np.ndarray
    realism: np.ndarray
    distance: np.ndarray
    latent: np.ndarray


def _as_generator_input(generator: ConditionalGenerator, images: np.ndarray | torch.Tensor,
                        device: torch.device) -> torch.Tensor:
    """uint8 NHWC or [-1, 1] NCHW images -> [-1, 1] NCHW at the generator's shape (channels adapted, nearest resize)."""
    x = torch.from_numpy(to_tensor_range(images)) if isinstance(images, np.ndarray) and images.dtype == np.uint8 \
        else torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4:
        raise EngineError(f"item images must be 4-D (N, H, W, C) uint8 or (N, C, H, W) float, got shape {tuple(x.shape)}")
    return image_adapter(tuple(x.shape[1:]), tuple(generator.image_shape))(x.to(device))  # type: ignore[arg-type]


def _check_categories(generator: ConditionalGenerator, category_idx: np.ndarray, n: int) -> torch.Tensor:
    category_idx = np.asarray(category_idx, dtype=np.int64).reshape(-1)
    if len(category_idx) != n:
        raise EngineError(f"{n} item images but {len(category_idx)} category indices")
    bad = np.flatnonzero((category_idx < 0) | (category_idx >= len(generator.categories)))
    if bad.size:
        raise EngineError(f"item {bad[0]}: category index {category_idx[bad[0]]} is not one the generator knows "
                          f"({list(generator.categories)})")
    return torch.from_numpy(category_idx)


def invert_images(generator: ConditionalGenerator, images: np.ndarray | torch.Tensor, category_idx: np.ndarray,
                  settings: DesignConfig, seed: int | np.ndarray = 0, device: torch.device | str = "cpu") -> Inversion:
    """Fit z to each image (restarts, Adam on the per-image MSE) and keep each image's best restart. `seed` is one
    seed for the batch, or one per image (then an image's fit does not depend on the batch it is in)."""
    device = torch.device(device)
    generator.to(device)
    target = _as_generator_input(generator, images, device)
    n, restarts, dim = len(target), max(1, settings.invert_restarts), int(generator.latent_dim)
    cats = _check_categories(generator, category_idx, n).to(device).repeat_interleave(restarts)
    target_rep = target.repeat_interleave(restarts, dim=0)
    if np.ndim(seed):
        z0 = torch.cat([torch.randn(restarts, dim, generator=torch.Generator().manual_seed(int(s)))
                        for s in np.asarray(seed).reshape(-1)]) if n else torch.zeros(0, dim)
    else:
        z0 = torch.randn(n * restarts, dim, generator=torch.Generator().manual_seed(int(seed)))
    z = (z0 * settings.init_std).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=settings.invert_lr)
    for _ in range(settings.invert_steps):
        error = ((generator.generate(z, cats) - target_rep) ** 2).flatten(1).mean(dim=1)
        optimiser.zero_grad(set_to_none=True)
        error.sum().backward()
        optimiser.step()
    with torch.no_grad():
        images_out = generator.generate(z, cats)
        error = ((images_out - target_rep) ** 2).flatten(1).mean(dim=1).reshape(n, restarts)
        best = error.argmin(dim=1) + torch.arange(n, device=device) * restarts
    return Inversion(latent=z.detach()[best].cpu().numpy(), reconstruction_error=error.min(dim=1).values.cpu().numpy(),
                     image=to_uint8_nhwc(images_out[best]))


def redesign_items(objective: DesignObjective, user_idx: np.ndarray, item_latent: np.ndarray,
                   category_idx: np.ndarray, settings: DesignConfig) -> Redesign:
    """Move each item's latent toward its paired user's taste, staying near the item; records every step."""
    device = objective.device
    user_idx = np.asarray(user_idx, dtype=np.int64).reshape(-1)
    n = len(user_idx)
    bad = np.flatnonzero((user_idx < 0) | (user_idx >= len(objective.theta)))
    if bad.size:
        raise EngineError(f"unknown user index {user_idx[bad[0]]} (the recommender knows users "
                          f"0..{len(objective.theta) - 1})")
    users = torch.from_numpy(user_idx).to(device)
    if not bool(torch.isfinite(objective.theta[users]).all()):
        raise EngineError("a user's preference vector is not finite: the recommender checkpoint is corrupt; retrain it")
    cats = _check_categories(objective.generator, category_idx, n).to(device)
    anchor = torch.as_tensor(item_latent, dtype=torch.float32, device=device).reshape(n, objective.latent_dim)
    z = anchor.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=settings.lr)
    steps: dict[str, list[np.ndarray]] = {"image": [], "score": [], "realism": [], "distance": [], "latent": []}

    def record(images, score, realism) -> None:
        steps["image"].append(to_uint8_nhwc(images))
        steps["score"].append(score.detach().cpu().numpy())
        steps["realism"].append(realism.detach().cpu().numpy())
        steps["distance"].append((z.detach() - anchor).norm(dim=1).cpu().numpy())
        steps["latent"].append(z.detach().cpu().numpy().copy())

    for _ in range(settings.steps):
        images, score, realism, value = objective(z, users, cats)
        record(images, score, realism)
        value = value - settings.proximity * ((z - anchor) ** 2).sum(dim=1)
        optimiser.zero_grad(set_to_none=True)
        (-value.sum()).backward()
        optimiser.step()
    with torch.no_grad():
        images, score, realism, _ = objective(z.detach(), users, cats)
    record(images, score, realism)
    return Redesign(**{name: np.stack(values, axis=1).astype(values[0].dtype) for name, values in steps.items()})
