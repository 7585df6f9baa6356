"""Garment attributes: what a shopper sees of the garment itself, blind to where it sits in the frame.

The oracle features of the sweet-spot taste (ORACLE_VERSION "sweetspot-1", see oracle.py). With g the grayscale
image in [0, 1], bg the median of its border pixels, d = g - bg and w = |d| the "ink" weight, the garment's box is
where the ink's row and column mass lie between its 1% and 99% quantiles (sub-pixel, from the cumulative mass),
widened by 5% of its size on each side. The box is resampled (bilinear, background outside the frame) to a fixed
CROP x CROP grid, and every attribute but the aspect is measured on that crop, so translating the garment leaves
them unchanged and a modest rescale nearly so. Nothing measures the position in the frame.

    brightness      ink-weighted mean of g over the crop: how light the garment is
    coverage        mean of min(w / 0.2, 1) over the crop: how much of its own box the garment fills
    aspect          log(box height / box width), in source pixels: long and narrow vs short and wide
    mass_row        ink-weighted mean row in the crop, in [-0.5, 0.5]: mass high (< 0) or low (> 0) in the garment
    spread_row      ink-weighted standard deviation of the crop row: mass spread along the garment's height
    spread_col      same across the width
    waist           log((mean width of the middle third + 0.05) / (mean width of the outer thirds + 0.05)), width of
                    a crop row = mean of min(w / 0.2, 1) along it: silhouette, fitted (< 0) vs straight or flared
    asymmetry       mean |w - mirror(w)| / mean w over the crop, mirrored about the box's own centre (left-right)
    edge_energy     mean |vertical difference| + mean |horizontal difference| of g over the crop: texture, detail
    ink_contrast    ink-weighted standard deviation of g over the crop: contrast within the garment
"""
from __future__ import annotations

import numpy as np

GARMENT_FEATURE_NAMES = ("brightness", "coverage", "aspect", "mass_row", "spread_row", "spread_col", "waist",
                         "asymmetry", "edge_energy", "ink_contrast")
INK_THRESHOLD = 0.2
CROP = 24  # side of the resampled garment box
MASS_QUANTILES = (0.01, 0.99)
BOX_MARGIN = 0.05  # of the box size, added on each side


def _mass_quantile(marginal: np.ndarray, q: float) -> np.ndarray:
    """(N,) continuous position (pixel row k covers [k, k+1)) where the cumulative mass of each row reaches q."""
    cdf = np.concatenate([np.zeros((len(marginal), 1)), np.cumsum(marginal, axis=1)], axis=1)
    target = q * cdf[:, -1:]
    k = np.clip((cdf[:, 1:] <= target).sum(axis=1), 0, marginal.shape[1] - 1)
    below = np.take_along_axis(cdf, k[:, None], 1)[:, 0]
    mass = np.take_along_axis(marginal, k[:, None], 1)[:, 0]
    return k + np.where(mass > 0, (target[:, 0] - below) / np.maximum(mass, 1e-12), 0.0)


def garment_box(w: np.ndarray) -> np.ndarray:
    """(N, 4) float boxes (top, bottom, left, right) in pixel-edge coordinates of each (H, W) ink map in `w`."""
    h, w_ = w.shape[1:]
    lo, hi = MASS_QUANTILES
    rows, cols = w.sum(axis=2, dtype=np.float64), w.sum(axis=1, dtype=np.float64)
    top, bottom = _mass_quantile(rows, lo), _mass_quantile(rows, hi)
    left, right = _mass_quantile(cols, lo), _mass_quantile(cols, hi)
    height, width = np.maximum(bottom - top, 1.0), np.maximum(right - left, 1.0)  # an empty image: a 1-pixel box
    centre_row, centre_col = (top + bottom) / 2, (left + right) / 2
    height, width = height * (1 + 2 * BOX_MARGIN), width * (1 + 2 * BOX_MARGIN)
    return np.stack([centre_row - height / 2, centre_row + height / 2, centre_col - width / 2,
                     centre_col + width / 2], axis=1)


def resample_boxes(maps: np.ndarray, boxes: np.ndarray, size: int = CROP) -> np.ndarray:
    """Bilinear samples (N, C, size, size) of (N, C, H, W) `maps` on a size x size grid of pixel centres over each
    box; samples outside the frame read 0 (the background of d and w)."""
    n, c, h, w_ = maps.shape
    steps = (np.arange(size) + 0.5) / size
    ys = boxes[:, 0:1] + steps[None] * (boxes[:, 1:2] - boxes[:, 0:1]) - 0.5  # (N, S) array coordinates
    xs = boxes[:, 2:3] + steps[None] * (boxes[:, 3:4] - boxes[:, 2:3]) - 0.5
    padded = np.pad(maps, ((0, 0), (0, 0), (1, 1), (1, 1)))  # a zero border: out-of-frame reads background
    ys, xs = np.clip(ys, -1, h - 1e-6), np.clip(xs, -1, w_ - 1e-6)  # beyond the border: background all the same
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = (ys - y0)[:, :, None], (xs - x0)[:, None, :]
    y0, x0 = y0.astype(np.int64) + 1, x0.astype(np.int64) + 1  # +1: into the padded frame
    flat = padded.reshape(n, c, -1)
    stride = w_ + 2

    def at(dy: int, dx: int) -> np.ndarray:
        index = ((y0 + dy)[:, :, None] * stride + (x0 + dx)[:, None, :]).reshape(n, 1, -1)
        return np.take_along_axis(flat, np.broadcast_to(index, (n, c, index.shape[2])), 2).reshape(n, c, size, size)

    fy, fx = fy[:, None], fx[:, None]
    return ((1 - fy) * ((1 - fx) * at(0, 0) + fx * at(0, 1)) + fy * ((1 - fx) * at(1, 0) + fx * at(1, 1)))


def garment_features(gray: np.ndarray) -> np.ndarray:
    """(N, H, W) grayscale in [0, 1] -> float32 (N, len(GARMENT_FEATURE_NAMES)), see the module docstring."""
    n, h, w_ = gray.shape
    border = np.concatenate([gray[:, 0, :], gray[:, -1, :], gray[:, :, 0], gray[:, :, -1]], axis=1)
    bg = np.median(border, axis=1)
    d = gray - bg[:, None, None]
    boxes = garment_box(np.abs(d))
    crop = resample_boxes(np.stack([d, np.abs(d)], axis=1).astype(np.float64), boxes)
    g, w = crop[:, 0] + bg[:, None, None], crop[:, 1]
    mass = w.sum(axis=(1, 2)) + 1e-6
    coord = (np.arange(CROP) + 0.5) / CROP - 0.5
    row_mass, col_mass = w.sum(axis=2), w.sum(axis=1)
    mass_row, mass_col = row_mass @ coord / mass, col_mass @ coord / mass
    spread_row = np.sqrt(np.maximum(row_mass @ coord**2 / mass - mass_row**2, 0.0))
    spread_col = np.sqrt(np.maximum(col_mass @ coord**2 / mass - mass_col**2, 0.0))
    soft_ink = np.minimum(w / INK_THRESHOLD, 1.0)
    width = soft_ink.mean(axis=2)  # (N, CROP) width profile down the garment
    third = CROP // 3
    middle = width[:, third:CROP - third].mean(axis=1)
    outer = np.concatenate([width[:, :third], width[:, CROP - third:]], axis=1).mean(axis=1)
    brightness = (g * w).sum(axis=(1, 2)) / mass
    contrast = np.sqrt(np.maximum((g**2 * w).sum(axis=(1, 2)) / mass - brightness**2, 0.0))
    edges = np.abs(np.diff(g, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(g, axis=2)).mean(axis=(1, 2))
    return np.stack([
        brightness, soft_ink.mean(axis=(1, 2)), np.log((boxes[:, 1] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 2])),
        mass_row, spread_row, spread_col, np.log((middle + 0.05) / (outer + 0.05)),
        np.abs(w - w[:, :, ::-1]).mean(axis=(1, 2)) / (w.mean(axis=(1, 2)) + 1e-3), edges, contrast,
    ], axis=1).astype(np.float32)
