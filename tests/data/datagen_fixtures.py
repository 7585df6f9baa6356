"""Tiny synthetic inputs for the data-layer tests (no real data needed)."""
from __future__ import annotations

import numpy as np


def blob_images(n: int, side: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (n, side, side, 1) images of bright rectangles of random size and place on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, side, side, 1), np.uint8)
    for k in range(n):
        h, w = rng.integers(3, side - 2, 2)
        top, left = rng.integers(0, side - h), rng.integers(0, side - w)
        images[k, top:top + h, left:left + w, 0] = rng.integers(80, 256)
    return images
