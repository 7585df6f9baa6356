"""Trivial rivals of a design: the shopper's best real item nudged by a few pixels or rescaled a little.

A yardstick that a nudged photo can beat measures framing, not garments. Two checks, both on simulated shoppers:

    nudged_rival(score, truth, images, users, categories)   # the scorer's favourite 1-3 px shift vs the original
    taste_invariance(truth, images, users, categories, rng)  # how far shifts and rescales move the true taste

`score(images, users, categories)` is any scorer of images (the learned recommender in bench/oracle_honesty.py);
the rival is the shift it likes best among the 24 shifts of 1-3 px in 8 directions (background fill). Pure numpy.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from fashiongen.evaluation.judges import compare

ImageScorer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (uint8 NHWC, users, categories) -> (N,)
DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
SHIFTS = tuple((d * dy, d * dx) for d in (1, 2, 3) for dy, dx in DIRECTIONS)


def background(images: np.ndarray) -> np.ndarray:
    """(N, C) median of each uint8 (N, H, W, C) image's border pixels: what a shift fills in."""
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    return np.median(border, axis=1).astype(np.uint8)


def shift_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """uint8 (N, H, W, C) images moved dy rows down and dx columns right; the uncovered part is background."""
    n, h, w, c = images.shape
    out = np.broadcast_to(background(images)[:, None, None, :], images.shape).copy()
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def rescale_images(images: np.ndarray, factor: float) -> np.ndarray:
    """uint8 (N, H, W, C) images scaled by `factor` about their centre (bilinear, background fill), same size."""
    n, h, w, c = images.shape
    ys = ((np.arange(h) + 0.5 - h / 2) / factor + h / 2 - 0.5)
    xs = ((np.arange(w) + 0.5 - w / 2) / factor + w / 2 - 0.5)
    y0, x0 = np.clip(np.floor(ys).astype(int), -1, h - 1), np.clip(np.floor(xs).astype(int), -1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    bg = background(images).astype(np.float64)[:, None, None, :]
    padded = np.concatenate([images.astype(np.float64), np.broadcast_to(bg, (n, 1, w, c))], axis=1)  # row h = bg
    padded = np.concatenate([padded, np.broadcast_to(bg, (n, h + 1, 1, c))], axis=2)  # column w = bg

    def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows = np.where((rows < 0) | (rows >= h), h, rows)
        cols = np.where((cols < 0) | (cols >= w), w, cols)
        return padded[:, rows][:, :, cols]

    out = ((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
           + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def nudged_rival(score: ImageScorer, truth, images: np.ndarray, users: np.ndarray,
                 categories: np.ndarray) -> dict[str, float]:
    """The scorer's favourite shift of each pair's real item (uint8 (P, H, W, C)) against the unshifted item,
    under the true taste: judges.compare of the two (win_share, mean_lift, p_sign, ...)."""
    users, categories = np.asarray(users, np.int64), np.asarray(categories, np.int64)
    shifted = np.stack([shift_images(images, dy, dx) for dy, dx in SHIFTS], axis=1)  # (P, S, H, W, C)
    flat = shifted.reshape(-1, *images.shape[1:])
    repeat = (lambda a: np.repeat(a, len(SHIFTS)))  # noqa: E731
    liked = np.asarray(score(flat, repeat(users), repeat(categories))).reshape(len(images), len(SHIFTS))
    favourite = shifted[np.arange(len(images)), liked.argmax(axis=1)]
    return compare(truth.image_preference(users, favourite, categories),
                   truth.image_preference(users, images, categories))


def taste_invariance(truth, images: np.ndarray, users: np.ndarray, categories: np.ndarray,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """|true taste change| of each image (uint8 (N, H, W, C), one shopper and category each) under a random shift of
    1-3 px (any of 8 directions) and under a random rescale in [0.9, 1.1], over that shopper's taste spread in the
    category (max - min over its real items): {"shift": (N,), "rescale": (N,)}."""
    users, categories = np.asarray(users, np.int64), np.asarray(categories, np.int64)
    base = truth.image_preference(users, images, categories)
    choice = rng.integers(0, len(SHIFTS), len(images))
    shifted = np.stack([shift_images(images[k:k + 1], *SHIFTS[s])[0] for k, s in enumerate(choice)])
    factors = rng.uniform(0.9, 1.1, len(images))
    rescaled = np.stack([rescale_images(images[k:k + 1], f)[0] for k, f in enumerate(factors)])
    spread = np.empty(len(images))
    for k, (u, c) in enumerate(zip(users, categories)):
        taste = truth.taste_logit([u], np.flatnonzero(truth.item_category == c))[0]
        spread[k] = taste.max() - taste.min()
    return {name: np.abs(truth.image_preference(users, moved, categories) - base) / spread
            for name, moved in (("shift", shifted), ("rescale", rescaled))}
