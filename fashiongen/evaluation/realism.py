"""Realism beside preference: designs against plain GAN samples of the same categories, both against real items.

    table = design_realism(designs, design_categories, generator, classifier, real_images, real_categories)
    table["designs"]["fid"], table["plain"]["fid"], table["fid_ratio"], table["designs"]["class_consistency"]

A design that wins by leaving the image manifold is not a win: the designs' in-domain FID/KID and class
consistency (`fashiongen.evaluation.image_quality`, in the catalogue classifier's feature space) are computed beside
those of plain samples G(z, c), z ~ N(0, 1) (the prior G was trained on), with the same category of each design.
`fid_ratio` = FID(designs) / FID(plain): ≤ 1.2 keeps the designs as realistic as what the generator draws anyway.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fashiongen.evaluation.image_quality import image_quality
from fashiongen.generation.engine import to_uint8_nhwc
from fashiongen.models.classifier import CategoryClassifier
from fashiongen.models.contract import ConditionalGenerator, sample_latents

PLAIN_SEED = 1
FEW_DESIGNS = 200  # below this many designs FID/KID (128-d features) say little; the summary says so


def plain_samples(generator: ConditionalGenerator, category_idx: np.ndarray, seed: int = PLAIN_SEED,
                  batch_size: int = 512, truncation: float = 0.0) -> np.ndarray:
    """G(z, c) for z from the sampling prior (`sample_latents`: N(0, 1), truncated at ±`truncation` when > 0), one
    per entry of `category_idx`: uint8 (N, H, W, C)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, len(category_idx), batch_size):
            cats = torch.as_tensor(np.asarray(category_idx[start:start + batch_size], np.int64))
            z = sample_latents(len(cats), generator.latent_dim, truncation, gen).to(generator.device)
            out.append(to_uint8_nhwc(generator.generate(z, cats.to(generator.device))))
    return np.concatenate(out) if out else np.zeros((0, *generator.image_shape[1:], generator.image_shape[0]), np.uint8)


def design_realism(designs: np.ndarray, design_categories: np.ndarray, generator: ConditionalGenerator,
                   classifier: CategoryClassifier, real_images: np.ndarray, real_categories: np.ndarray,
                   categories: list[str], seed: int = 0, max_real: int = 2000,
                   truncation: float = 0.0) -> dict[str, Any]:
    """Overall quality of the designs and of plain samples (same categories, the sampling prior truncated at
    ±`truncation` when > 0, gan.truncation) against (a seeded sample of at most `max_real` of) the real images."""
    design_categories = np.asarray(design_categories, np.int64)
    if len(real_images) > max_real:
        keep = np.sort(np.random.default_rng(seed).choice(len(real_images), max_real, replace=False))
        real_images, real_categories = real_images[keep], np.asarray(real_categories)[keep]
    plain = plain_samples(generator, design_categories, truncation=truncation)
    subset = min(1000, len(designs), len(real_images))
    kwargs: dict[str, Any] = {"kid_subset_size": max(2, subset), "seed": seed}
    quality = {name: image_quality(real_images, real_categories, images, design_categories, classifier, categories,
                                   **kwargs)["overall"]
               for name, images in (("designs", designs), ("plain", plain))}
    quality["fid_ratio"] = quality["designs"]["fid"] / quality["plain"]["fid"] if quality["plain"]["fid"] else np.nan
    return quality


def generator_quality(generator: ConditionalGenerator, classifier: CategoryClassifier, real_images: np.ndarray,
                      real_categories: np.ndarray, per_category: int, truncation: float = 0.0,
                      seed: int = PLAIN_SEED) -> dict[str, Any]:
    """`image_quality` of `per_category` plain samples of every category against real images (held out from the
    GAN's training), with `diversity_ratio` = generated / real feature spread added to every row."""
    cats = np.repeat(np.arange(len(generator.categories)), per_category)
    fake = plain_samples(generator, cats, seed=seed, truncation=truncation)
    subset = min(1000, len(real_images), len(fake))
    table = image_quality(real_images, real_categories, fake, cats, classifier, generator.categories,
                          kid_subset_size=max(2, subset), seed=seed)
    for row in [table["overall"], *table["per_category"].values()]:
        row["diversity_ratio"] = row["diversity"] / row["real_diversity"] if row["real_diversity"] else float("nan")
    return table


def format_realism(table: dict[str, Any]) -> str:
    """One line: FID/KID and class consistency of the designs against plain samples."""
    d, p = table["designs"], table["plain"]
    caveat = (f"; only {d['n_fake']} designs: FID/KID are noisy below a few hundred, read class consistency"
              if d["n_fake"] < FEW_DESIGNS else "")
    return (f"realism (in-domain, {d['n_fake']} designs vs as many plain samples, against {d['n_real']} real items): "
            f"FID {d['fid']:.2f} vs {p['fid']:.2f} (ratio {table['fid_ratio']:.2f}), KID {d['kid']:.4f} vs "
            f"{p['kid']:.4f}, class consistency {d['class_consistency']:.1%} vs {p['class_consistency']:.1%}{caveat}")
