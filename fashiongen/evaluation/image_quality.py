"""Image-quality metrics of generated images against real ones, in the feature space of the catalogue classifier.

    table = image_quality(real_images, real_cats, fake_images, fake_cats, classifier, categories)

FID and KID here use `CategoryClassifier.features` (a small network trained on the catalogue itself), not
Inception-v3: they are **in-domain numbers, not comparable with published (Inception) FID/KID**. Compare them
with the same metrics computed real-vs-real (two disjoint real sets), which gives the floor.

- fid: Fréchet distance of Gaussians fitted to the two feature sets.
- kid: unbiased MMD² with the polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over random subsets (the
  KID of Bińkowski et al. 2018); kid_std is the spread over subsets. Prefer KID for small per-category sets.
- class_consistency: the classifier's accuracy on the generated images w.r.t. their requested category.
- diversity: mean pairwise Euclidean distance between features within a category (also for the real images,
  as `real_diversity`, so the ratio says whether the generator collapses).

Torch and numpy only: usable offline, on any image source (GAN samples, preference-optimised designs).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fashiongen.data.images import to_tensor_range
from fashiongen.errors import FashiongenError

MIN_FID_SAMPLES = 2


class MetricInputError(FashiongenError, ValueError):
    """Inputs the metrics cannot use (mismatched lengths, too few images); the message says which."""


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½), with tr((Σ1 Σ2)^½) = Σ √eig(Σ1^½ Σ2 Σ1^½) (symmetric, stable)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    vals, vecs = np.linalg.eigh(sigma1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root, 0.0))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if min(len(a), len(b)) < MIN_FID_SAMPLES:
        raise MetricInputError(f"FID needs at least {MIN_FID_SAMPLES} images per set, got {len(a)} and {len(b)}")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² between samples x (m, D) and y (n, D) with k(a, b) = (aᵀb / D + coef0)^degree."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, dim = len(x), len(y), x.shape[1]
    kxx = (x @ x.T / dim + coef0) ** degree
    kyy = (y @ y.T / dim + coef0) ** degree
    kxy = (x @ y.T / dim + coef0) ** degree
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 50, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """KID: mean and std of the unbiased polynomial MMD² over `subsets` random subsets of
    min(subset_size, len(a), len(b)) rows of each set (drawn without replacement)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise MetricInputError(f"KID needs at least 2 images per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    values = [polynomial_mmd2_unbiased(a[rng.choice(len(a), size, replace=False)],
                                       b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def mean_pairwise_distance(features: np.ndarray, max_samples: int = 1000, seed: int = 0) -> float:
    """Mean Euclidean distance between distinct pairs (of at most `max_samples` random rows)."""
    f = torch.as_tensor(np.asarray(features, np.float64))
    if len(f) < 2:
        return float("nan")
    if len(f) > max_samples:
        f = f[np.random.default_rng(seed).choice(len(f), max_samples, replace=False)]
    d = torch.cdist(f, f)
    return float(d.sum() / (len(f) * (len(f) - 1)))


@torch.no_grad()
def classifier_outputs(classifier: torch.nn.Module, images: np.ndarray | torch.Tensor,
                       batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F), predicted category (N,)) of uint8 NHWC arrays or [-1, 1] NCHW tensors."""
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, preds = [], []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        x = torch.from_numpy(to_tensor_range(chunk)) if isinstance(chunk, np.ndarray) else chunk.float()
        x = x.to(device)
        feats.append(classifier.features(x).double().cpu())
        preds.append(classifier(x).argmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def _metrics(real_f: np.ndarray, fake_f: np.ndarray, fake_pred: np.ndarray, fake_c: np.ndarray,
             kid_subsets: int, kid_subset_size: int, seed: int) -> dict[str, float]:
    kid_mean, kid_std = kid(real_f, fake_f, kid_subsets, kid_subset_size, seed)
    return {"fid": fid(real_f, fake_f), "kid": kid_mean, "kid_std": kid_std,
            "class_consistency": float((fake_pred == fake_c).mean()),
            "diversity": mean_pairwise_distance(fake_f, seed=seed),
            "real_diversity": mean_pairwise_distance(real_f, seed=seed),
            "n_real": int(len(real_f)), "n_fake": int(len(fake_f))}


def image_quality(real_images: np.ndarray | torch.Tensor, real_categories: np.ndarray,
                  fake_images: np.ndarray | torch.Tensor, fake_categories: np.ndarray,
                  classifier: torch.nn.Module, categories: list[str] | None = None, *,
                  kid_subsets: int = 50, kid_subset_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every metric for any image source, overall and per category:

        {"overall": {fid, kid, kid_std, class_consistency, diversity, real_diversity, n_real, n_fake},
         "per_category": {name: {... same keys ...}}}

    Images are uint8 (N, H, W, C) arrays or float (N, C, H, W) tensors in [-1, 1]; categories are integer
    indices (into `categories`, default "0", "1", ...). Categories with fewer than 2 images on either side are
    left out of `per_category`. Class consistency on real images measures the classifier itself."""
    real_c, fake_c = np.asarray(real_categories).astype(np.int64), np.asarray(fake_categories).astype(np.int64)
    for name, imgs, cats in (("real", real_images, real_c), ("fake", fake_images, fake_c)):
        if len(imgs) != len(cats):
            raise MetricInputError(f"{name} images ({len(imgs)}) and categories ({len(cats)}) differ in length")
    real_f, _ = classifier_outputs(classifier, real_images)
    fake_f, fake_pred = classifier_outputs(classifier, fake_images)
    names = categories or [str(k) for k in range(int(max(real_c.max(initial=0), fake_c.max(initial=0))) + 1)]
    out: dict[str, Any] = {"overall": _metrics(real_f, fake_f, fake_pred, fake_c, kid_subsets, kid_subset_size, seed),
                           "per_category": {}}
    for k, name in enumerate(names):
        r, f = real_c == k, fake_c == k
        if r.sum() >= 2 and f.sum() >= 2:
            out["per_category"][name] = _metrics(real_f[r], fake_f[f], fake_pred[f], fake_c[f], kid_subsets,
                                                 kid_subset_size, seed)
    return out


def format_table(result: dict[str, Any], title: str = "") -> str:
    """A plain-text table of `image_quality` output (one row per category, then 'overall')."""
    cols = ("fid", "kid", "class_consistency", "diversity", "real_diversity", "n_real", "n_fake")
    rows = [*result["per_category"].items(), ("overall", result["overall"])]
    width = max(12, *(len(name) for name, _ in rows))
    lines = [title] if title else []
    lines.append(f"{'category':<{width}} " + " ".join(f"{c:>17}" for c in cols))
    for name, m in rows:
        cells = [f"{m[c]:>17d}" if isinstance(m[c], int) else f"{m[c]:>17.5g}" for c in cols]
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)
