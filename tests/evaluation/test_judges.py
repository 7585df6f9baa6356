import math

import numpy as np
import pytest

from fashiongen.evaluation.judges import compare, permutation_test, sign_test


@pytest.mark.parametrize("wins,losses", [(0, 0), (5, 0), (7, 3), (3, 7), (30, 20)])
def test_sign_test_is_the_binomial_tail(wins, losses):
    n = wins + losses
    expected = sum(math.comb(n, k) for k in range(wins, n + 1)) / 2 ** n if n else 1.0
    assert sign_test(wins, losses) == pytest.approx(expected, rel=1e-9)


def test_sign_test_normal_approximation_is_continuous_with_the_exact_one():
    assert sign_test(5_100, 4_900) == pytest.approx(sign_test(5_101, 4_901), rel=0.05)
    assert sign_test(10_600, 9_400) < 1e-15


def test_permutation_test_separates_a_real_gain_from_noise():
    rng = np.random.default_rng(0)
    assert permutation_test(rng.normal(0.5, 1.0, 200)) < 0.01
    noise = [permutation_test(rng.normal(0.0, 1.0, 200), seed=s) for s in range(20)]
    assert 0.2 < np.mean(noise) < 0.8
    assert permutation_test(np.zeros(10)) == 1.0


def test_compare_counts_wins_lifts_and_skips_missing_pairs():
    v = compare(np.array([2.0, 1.0, 3.0, np.nan]), np.array([1.0, 2.0, 1.0, 0.0]))
    assert v["pairs"] == 3 and v["win_share"] == pytest.approx(2 / 3)
    assert v["mean_lift"] == pytest.approx((1 - 1 + 2) / 3) and v["median_lift"] == pytest.approx(1.0)
    assert v["relative_lift"] == pytest.approx((2 / 3) / (4 / 3))
    assert compare(np.array([np.nan]), np.array([1.0])) == {}
