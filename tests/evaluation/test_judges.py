import math

import numpy as np
import pytest

from fashiongen.evaluation import judges
from fashiongen.evaluation.judges import compare, permutation_test, share_interval, sign_test


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


def test_share_interval_covers_the_share_and_widens_when_a_shoppers_pairs_move_together():
    rng = np.random.default_rng(0)
    hits = rng.random(40) < 0.6
    low, high = share_interval(hits)
    assert low < hits.mean() < high and 0.1 < high - low < 0.4  # about ±1.96 sqrt(.24 / 40) = ±0.15
    repeated = np.repeat(hits, 10)  # 40 shoppers x 10 pairs with one outcome each: still 40 pieces of evidence
    as_pairs, as_shoppers = share_interval(repeated), share_interval(repeated, groups=np.repeat(np.arange(40), 10))
    assert as_pairs[1] - as_pairs[0] < 0.5 * (high - low)  # 400 "independent" pairs: far too sure
    assert as_shoppers == pytest.approx((low, high), abs=0.03)
    assert all(math.isnan(x) for x in share_interval(hits, groups=np.zeros(40)))  # one shopper: no spread to read


def test_share_interval_of_a_ratio_and_its_normal_approximation_past_the_bootstrap_limit(monkeypatch):
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 300, 3000)
    totals = (rng.random(3000) < 0.6).astype(float)
    hits = totals * (rng.random(3000) < 0.5)
    boot = share_interval(hits, groups, totals)
    assert boot[0] < hits.sum() / totals.sum() < boot[1]
    monkeypatch.setattr(judges, "BOOTSTRAP_LIMIT", 100)
    assert share_interval(hits, groups, totals) == pytest.approx(boot, abs=0.01)


def test_compare_reports_the_win_interval_by_shopper_and_prints_it():
    design, real = np.r_[np.ones(30), np.zeros(30)], np.full(60, 0.5)
    by_pair = compare(design, real)
    by_shopper = compare(design, real, groups=np.repeat(np.arange(6), 10))  # 3 shoppers win all, 3 lose all
    assert by_pair["win_low"] < 0.5 < by_pair["win_high"]
    assert by_shopper["win_high"] - by_shopper["win_low"] > 1.5 * (by_pair["win_high"] - by_pair["win_low"])
    row = judges.format_verdicts({"j": by_shopper}).splitlines()[2]
    assert f"[{by_shopper['win_low']:.1%}, {by_shopper['win_high']:.1%}]" in row
    assert "| n/a |" in judges.format_verdicts({"j": {**by_shopper, "win_low": math.nan}})
