"""Training the amortised designer (`models/designer.py`) in pure torch: no Ray, so it runs and benchmarks on any
machine; a Ray Train driver wraps the same step.

The loss of a batch of (user, category) pairs is what the preference engine maximises, averaged over the
designer's R latents per pair (`PreferenceEngine.latent_objective`: the recommender's score − η·(realism − 1)²,
plus the category guard when on), with two terms of its own:

    loss = − mean objective
           + prior_weight  · mean over latents of (|z|² / L − init_std²)²     stay on the shell z0 is drawn from
           + repel_weight · mean over a pair's latent pairs of exp(−|z_r − z_s|² / (2 L repel_scale²))   keep R apart

The recommender, G, Φ and D are frozen (the engine holds them in eval mode); only the designer learns.

    designer = AmortisedDesigner(K, C, L, R)
    history = train_designer(engine, designer, train_users, cfg.designer, validation_users=val)   # in process
    parts = designer_epoch(engine, ddp_designer, optimiser, u, c, epoch_order(len(u), seed, epoch, rank, world))
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from fashiongen.config import DesignerConfig
from fashiongen.generation.engine import PreferenceEngine
from fashiongen.models.designer import AmortisedDesigner


def pair_grid(users: np.ndarray, num_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (user, category) of `users` x the generator's categories, as two index arrays."""
    users = np.asarray(users, dtype=np.int64)
    return np.repeat(users, num_categories), np.tile(np.arange(num_categories, dtype=np.int64), len(users))


def designer_loss(engine: PreferenceEngine, designer: AmortisedDesigner, user_idx: np.ndarray,
                  category_idx: np.ndarray, settings: DesignerConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss above for one batch of pairs, and its parts (objective, score, realism, prior, repel)."""
    device = engine.device
    users = torch.from_numpy(np.asarray(user_idx, np.int64)).to(device)
    cats = torch.from_numpy(np.asarray(category_idx, np.int64)).to(device)
    vectors, offsets = engine.objective.recommender.design_vectors(users, cats)
    z = designer(vectors.float(), offsets.float(), cats)
    n_pairs, n_restarts, latent_dim = z.shape
    eta = engine.pair_eta(user_idx, category_idx).repeat_interleave(n_restarts)
    _, score, realism, objective = engine.latent_objective(z.reshape(-1, latent_dim),
                                                           users.repeat_interleave(n_restarts),
                                                           cats.repeat_interleave(n_restarts), eta)
    prior = ((z.pow(2).mean(dim=2) - engine.settings.init_std ** 2) ** 2).mean()
    apart = ~torch.eye(n_restarts, dtype=torch.bool, device=z.device)
    d2 = torch.cdist(z, z).pow(2)[:, apart] / latent_dim
    scale = settings.repel_scale * engine.settings.init_std
    repel = torch.exp(-d2 / (2 * scale ** 2)).mean() if n_restarts > 1 else z.new_zeros(())
    loss = -objective.mean() + settings.prior_weight * prior + settings.repel_weight * repel
    parts = {"objective": objective, "score": score, "realism": realism, "prior": prior, "repel": repel}
    return loss, {name: value.detach().mean().item() for name, value in parts.items()}


@torch.no_grad()
def mean_objective(engine: PreferenceEngine, latents: torch.Tensor, user_idx: np.ndarray,
                   category_idx: np.ndarray, batch_pairs: int = 256) -> float:
    """Mean design objective of (P, R, L) latents for the given pairs (what the designer maximises)."""
    total, count = 0.0, 0
    for start in range(0, len(user_idx), batch_pairs):
        z = latents[start:start + batch_pairs].to(engine.device)
        users = torch.from_numpy(user_idx[start:start + batch_pairs]).to(engine.device)
        cats = torch.from_numpy(category_idx[start:start + batch_pairs]).to(engine.device)
        r = z.shape[1]
        eta = engine.pair_eta(user_idx[start:start + batch_pairs],
                              category_idx[start:start + batch_pairs]).repeat_interleave(r)
        objective = engine.latent_objective(z.reshape(-1, z.shape[2]), users.repeat_interleave(r),
                                            cats.repeat_interleave(r), eta)[3]
        total, count = total + float(objective.sum()), count + objective.numel()
    return total / max(count, 1)


@torch.no_grad()
def designer_latents(engine: PreferenceEngine, designer: AmortisedDesigner, user_idx: np.ndarray,
                     category_idx: np.ndarray, batch_pairs: int = 256) -> torch.Tensor:
    """The designer's (P, R, L) latents for the pairs."""
    designer.eval()
    out = []
    for start in range(0, len(user_idx), batch_pairs):
        users = torch.from_numpy(user_idx[start:start + batch_pairs]).to(engine.device)
        cats = torch.from_numpy(category_idx[start:start + batch_pairs]).to(engine.device)
        vectors, offsets = engine.objective.recommender.design_vectors(users, cats)
        out.append(designer(vectors.float(), offsets.float(), cats).cpu())
    return torch.cat(out) if out else torch.zeros(0, designer.restarts, designer.latent_dim)


def epoch_order(num_pairs: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """This rank's pairs of an epoch, in order: a permutation seeded by (seed, epoch), dealt round-robin to the
    ranks and cut to equal lengths (DDP steps together). A resumed epoch replays exactly."""
    order = np.random.default_rng([seed, epoch]).permutation(num_pairs)
    return order[rank::world][:num_pairs // world]


def designer_epoch(engine: PreferenceEngine, designer: torch.nn.Module, optimiser: torch.optim.Optimizer,
                   user_idx: np.ndarray, category_idx: np.ndarray, order: np.ndarray,
                   settings: DesignerConfig) -> dict[str, float]:
    """One pass over the pairs `order` indexes, in batches of settings.batch_pairs; `designer` may be DDP-wrapped.
    Returns the mean loss parts and the batch count."""
    designer.train()
    parts: dict[str, float] = {}
    batches = 0
    for start in range(0, len(order), settings.batch_pairs):
        idx = order[start:start + settings.batch_pairs]
        loss, stats = designer_loss(engine, designer, user_idx[idx], category_idx[idx], settings)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        for key, value in stats.items():
            parts[key] = parts.get(key, 0.0) + value
        batches += 1
    return {**{k: v / max(batches, 1) for k, v in parts.items()}, "batches": batches}


def train_designer(engine: PreferenceEngine, designer: AmortisedDesigner, users: np.ndarray,
                   settings: DesignerConfig, validation_users: np.ndarray | None = None,
                   on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Fit `designer` on every (user, category) of `users` in process (what each Ray Train worker does on its
    share); per epoch the training loss parts and, with `validation_users`, their pairs' mean objective (users
    never trained on)."""
    designer.to(engine.device)
    optimiser = torch.optim.Adam(designer.parameters(), lr=settings.lr)
    train_u, train_c = pair_grid(users, len(engine.categories))
    val = pair_grid(validation_users, len(engine.categories)) if validation_users is not None else None
    history = []
    for epoch in range(settings.epochs):
        began = time.perf_counter()
        order = epoch_order(len(train_u), settings.seed, epoch)
        parts = designer_epoch(engine, designer, optimiser, train_u, train_c, order, settings)
        seconds = time.perf_counter() - began
        metrics = {"epoch": epoch, **parts, "seconds": seconds, "pairs_per_s": len(order) / seconds}
        if val is not None:
            metrics["val_objective"] = mean_objective(engine, designer_latents(engine, designer, *val), *val)
        history.append(metrics)
        if on_epoch:
            on_epoch(metrics)
    designer.eval()
    return history
