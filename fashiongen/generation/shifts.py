"""Expectation over small shifts: score a design as the mean over a few framings of it, not at one framing.

A garment that wins only when it sits at one exact position is the learned scorer's artefact, not a better
garment. With design.shift_pixels = p > 0 the climbed score becomes the mean of the score of the design and of the
design moved p pixels left, right, up and down (five fixed views, so the search stays deterministic; the border
is filled by repeating the edge, the catalogue's background). Realism, the category guard and the reported
`score` stay those of the unshifted design.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

OFFSETS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx) in units of p; view 0 is the design itself


def view_count(pixels: int) -> int:
    """How many framings of each design are scored: 1 without shifts."""
    return len(OFFSETS) if pixels > 0 else 1


def shifted_views(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """(n, C, H, W) -> (V·n, C, H, W): view v of image i at row v·n + i, differentiable; the images when p = 0."""
    if pixels <= 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (pixels, pixels, pixels, pixels), mode="replicate")
    return torch.cat([padded[..., pixels - dy * pixels: pixels - dy * pixels + height,
                             pixels - dx * pixels: pixels - dx * pixels + width] for dy, dx in OFFSETS])


def view_mean(per_view: torch.Tensor, views: int) -> torch.Tensor:
    """(V·n,) scores of the views -> (n,) their mean per design."""
    return per_view.reshape(views, -1).mean(dim=0)
