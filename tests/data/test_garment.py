"""Garment attributes: measured on the garment itself, blind to where it sits in the frame."""
from __future__ import annotations

import numpy as np

from fashiongen.data.garment import GARMENT_FEATURE_NAMES, garment_features


def _garments(n: int = 16, side: int = 32, seed: int = 0) -> np.ndarray:
    """(n, side, side) grey garments: a textured trapezoid of random size, slope and brightness on black, with a
    margin of at least 6 px so every shift below keeps the whole garment in the frame."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, side, side), np.float32)
    for k in range(n):
        h, top_w, slope = rng.integers(10, 18), rng.integers(4, 10), rng.uniform(-0.3, 0.4)
        r0, c0 = 7, side // 2
        for r in range(h):
            half = max(1, int(round(top_w / 2 + slope * r)))
            out[k, r0 + r, c0 - half:c0 + half] = rng.uniform(0.4, 1.0) if r % 3 == 0 else 0.7
    return out


def test_translation_leaves_every_attribute_unchanged():
    garments = _garments()
    base = garment_features(garments)
    assert base.shape == (16, len(GARMENT_FEATURE_NAMES)) and np.isfinite(base).all()
    for dy, dx in ((3, 0), (-5, 2), (0, -4), (4, 4)):
        moved = np.roll(garments, (dy, dx), axis=(1, 2))  # the margin keeps the garment whole
        np.testing.assert_allclose(garment_features(moved), base, atol=1e-4)


def test_attributes_see_the_garment_not_the_frame():
    garments = _garments()
    base = garment_features(garments)
    mirrored = garment_features(garments[:, :, ::-1])
    names = list(GARMENT_FEATURE_NAMES)
    for same in ("asymmetry", "aspect", "brightness", "coverage", "mass_row"):
        np.testing.assert_allclose(mirrored[:, names.index(same)], base[:, names.index(same)], atol=1e-3)
    flipped = garment_features(garments[:, ::-1])  # upside down: the mass moves to the other end of the garment
    mass_row = names.index("mass_row")
    np.testing.assert_allclose(flipped[:, mass_row], -base[:, mass_row], atol=1e-3)
    darker = garment_features(garments * 0.5)
    assert (darker[:, names.index("brightness")] < base[:, names.index("brightness")]).all()


def test_an_empty_image_gives_finite_attributes():
    assert np.isfinite(garment_features(np.zeros((2, 28, 28), np.float32))).all()
