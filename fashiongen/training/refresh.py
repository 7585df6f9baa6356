"""Refresh user vectors with the image network frozen: the nightly update of θ from new interactions.

With Φ(X_i) fixed, DVBPR's objective restricted to the changed users' θ_u is a small convex-in-score problem:

    min_θ  Σ_(u,i,j) −ln σ(θ_u · (Φ_i − Φ_j)) + λ_θ/2 Σ_u ||θ_u||²

over each changed user's training items i (the catalogue's plus the landed ones) and negatives j drawn
uniformly from the other items, as the official sampler does. Full-batch Adam from the current θ_u; the result
depends only on the inputs and the seed. Pure PyTorch: the nightly driver runs it in-process.
"""
from __future__ import annotations

import numpy as np
import torch

from fashiongen.models.bpr import TrainSet


def refresh_user_vectors(theta: torch.Tensor, phi: torch.Tensor, users: np.ndarray, train: TrainSet, *,
                         steps: int, lr: float, lambda_theta: float, seed: int) -> tuple[torch.Tensor, list[float]]:
    """New θ rows (len(users), K) for `users` (dense indices), and the loss per step.

    theta: (U, K) current user vectors; phi: (N, K) frozen item features; train: every user's positives."""
    users = np.asarray(users, np.int64)
    if len(users) == 0:
        return theta[:0].clone(), []
    counts = train.indptr[users + 1] - train.indptr[users]
    rows = np.repeat(np.arange(len(users)), counts)  # which changed user each positive belongs to
    positives = np.concatenate([train.items[train.indptr[u]:train.indptr[u + 1]] for u in users])
    row_t, pos_t = torch.from_numpy(rows), torch.from_numpy(positives)
    phi = phi.detach().float().cpu()
    vectors = theta.detach().float().cpu()[torch.from_numpy(users)].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([vectors], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        negatives = torch.randint(0, train.num_items, (len(rows),), generator=gen)
        valid = torch.from_numpy(~train.contains(users[rows], negatives.numpy()))  # j outside u's items
        x_uij = (vectors[row_t] * (phi[pos_t] - phi[negatives])).sum(-1)
        loss = -(torch.nn.functional.logsigmoid(x_uij) * valid).sum() + 0.5 * lambda_theta * vectors.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return vectors.detach(), losses
