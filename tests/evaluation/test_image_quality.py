"""In-domain image-quality metrics: FID/KID against closed forms and brute force, the one-call table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashiongen.models.contract import ConditionalGenerator
from fashiongen.evaluation.image_quality import (MetricInputError, fid, format_table, frechet_distance, image_quality,
                                                 kid, mean_pairwise_distance, polynomial_mmd2_unbiased)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 8))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_with_a_full_covariance_matches_scalar_rotation_invariance():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    v1, v2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 1.0, 2.0, 0.5])
    # Rotating both covariances by the same orthogonal matrix keeps the distance; with a shared eigenbasis
    # the closed form is the diagonal one.
    expected = 1.0 + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    got = frechet_distance(np.zeros(4), q @ np.diag(v1) @ q.T, np.eye(4)[0], q @ np.diag(v2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)


def test_fid_of_two_sampled_gaussians_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal([2.0, 0.0], [2.0, 1.0], size=(20000, 2))
    expected = 4.0 + (1 + 4 - 2 * 2) + 0.0  # |mu|^2 + (1 + 4 - 2*sqrt(4)) + (1 + 1 - 2)
    assert fid(a, b) == pytest.approx(expected, abs=0.1)


def test_unbiased_mmd_matches_a_brute_force_double_loop():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 3)), rng.normal(1.0, size=(5, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(6) for j in range(5)) / 30
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    same, same_std = kid(a, b, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    shifted, _ = kid(a, b + 0.5, subsets=20, subset_size=200)
    assert shifted > 10 * max(abs(same), same_std)


def test_mean_pairwise_distance_is_exact_on_three_points():
    pts = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert mean_pairwise_distance(pts) == pytest.approx((5 + 4 + 3) / 3)


class _QuadrantClassifier(torch.nn.Module):
    """Features = mean brightness of the left and right image halves; category = the brighter half."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[3] // 2
        return torch.stack([x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))], 1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _half_images(n: int, cats: np.ndarray, rng) -> np.ndarray:
    img = rng.integers(0, 60, (n, 8, 8, 1), dtype=np.uint8)
    for k, c in enumerate(cats):
        img[k, :, 4 * c:4 * c + 4] += 150
    return img


def test_image_quality_table_per_category_and_overall():
    rng = np.random.default_rng(5)
    real_c = np.arange(400) % 2
    real = _half_images(400, real_c, rng)
    fake_c = np.arange(200) % 2
    wrong = _half_images(200, 1 - fake_c, rng)  # every fake shows the other category
    clf = _QuadrantClassifier()
    good = image_quality(real[:200], real_c[:200], real[200:], real_c[200:], clf, ["left", "right"], kid_subsets=5)
    bad = image_quality(real[:200], real_c[:200], wrong, fake_c, clf, ["left", "right"], kid_subsets=5)
    assert set(good["per_category"]) == {"left", "right"}
    assert good["overall"]["class_consistency"] == 1.0 and bad["overall"]["class_consistency"] == 0.0
    assert good["per_category"]["left"]["fid"] < 0.01 < bad["per_category"]["left"]["fid"]
    # Overall, the wrong-category fakes have the real marginal: only per-category metrics see the error.
    assert bad["overall"]["fid"] < 0.01
    assert good["overall"]["n_fake"] == 200 and good["per_category"]["left"]["n_fake"] == 100
    # Float tensors in [-1, 1] give the same numbers as uint8 arrays.
    as_tensor = torch.from_numpy(real[200:].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
    same = image_quality(real[:200], real_c[:200], as_tensor, real_c[200:], clf, ["left", "right"], kid_subsets=5)
    assert same["overall"]["fid"] == pytest.approx(good["overall"]["fid"], rel=1e-5)
    assert "overall" in format_table(good, "real vs real")


def test_image_quality_rejects_mismatched_lengths():
    imgs = np.zeros((4, 8, 8, 1), np.uint8)
    with pytest.raises(MetricInputError, match="fake images"):
        image_quality(imgs, np.zeros(4), imgs, np.zeros(3), _QuadrantClassifier())


class _HalfGenerator(ConditionalGenerator):
    """Draws the real distribution of `_half_images` (the category's half bright), or uniform noise."""

    kind = "half-test"

    def __init__(self, noise: bool = False):
        self.latent_dim, self.categories, self.image_shape, self.noise = 2, ["left", "right"], (1, 8, 8), noise

    def generate(self, z, c):
        base = torch.randint(0, 60, (len(z), 1, 8, 8)).float()  # the real images' background, pixel by pixel
        if self.noise:
            return torch.rand(len(z), 1, 8, 8) * 2 - 1
        for k in range(len(z)):
            base[k, :, :, 4 * int(c[k]):4 * int(c[k]) + 4] += 150
        return base / 127.5 - 1

    def discriminate(self, x, c):
        return torch.ones(len(x))

    def to(self, device):
        return self

    def freeze(self):
        pass

    def checkpoint_payload(self):
        return {}

    @classmethod
    def from_payload(cls, payload):
        return cls()


def test_generator_quality_of_the_real_distribution_is_near_zero_and_of_noise_is_large():
    from fashiongen.evaluation.realism import generator_quality

    rng = np.random.default_rng(0)
    real_c = np.arange(400) % 2
    real = _half_images(400, real_c, rng)
    clf = _QuadrantClassifier()
    torch.manual_seed(0)
    good = generator_quality(_HalfGenerator(), clf, real, real_c, per_category=200)
    noise = generator_quality(_HalfGenerator(noise=True), clf, real, real_c, per_category=200)
    assert good["overall"]["class_consistency"] == 1.0 and good["overall"]["n_fake"] == 400
    assert good["overall"]["fid"] < 0.02 < 0.1 < noise["overall"]["fid"]
    assert noise["overall"]["class_consistency"] < 0.7 and noise["overall"]["kid"] > 10 * abs(good["overall"]["kid"])
    assert set(good["per_category"]) == {"left", "right"} and "diversity_ratio" in good["per_category"]["left"]
