"""Does a design beat the shopper's best real item? Paired comparisons under one judge, with a significance test.

    verdict = compare(best_design, best_real)   # per-pair judge values of the best design and of the best real item
    verdict["win_share"], verdict["mean_lift"], verdict["p_sign"], verdict["p_permutation"]

The same function serves every judge of a designs run (the learned scorer the designs climbed, the simulated
shoppers' true taste, a held-out scorer trained apart), so they are read side by side. Per pair the lift is
judge(best design) − judge(best real item), both sides being what the system would show the shopper: its kept
designs and the catalogue's top items retrieved by the learned scorer. Tests are one-sided ("designs beat real"):
- p_sign: exact binomial sign test of wins against losses (ties dropped); normal approximation above 10,000 pairs;
- p_permutation: paired sign-flip permutation test of the mean lift (REBECA-style), seeded; the normal
  approximation of the same statistic above 10,000 pairs.
"""
from __future__ import annotations

import math

import numpy as np

EXACT_LIMIT = 10_000
PERMUTATIONS = 4_000
PERMUTATION_CHUNK = 200


def sign_test(wins: int, losses: int) -> float:
    """P(at least `wins` successes in wins + losses fair coin flips): one-sided sign-test p-value."""
    n = wins + losses
    if n == 0:
        return 1.0
    if n > EXACT_LIMIT:
        z = (wins - n / 2 - 0.5) / math.sqrt(n / 4)
        return 0.5 * math.erfc(z / math.sqrt(2))
    log_terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
                 for k in range(wins, n + 1)]
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def permutation_test(lift: np.ndarray, seed: int = 0) -> float:
    """One-sided p-value of mean(lift) > 0 under random sign flips of the paired differences."""
    lift = np.asarray(lift, dtype=np.float64)
    n = len(lift)
    if n == 0 or not np.any(lift):
        return 1.0
    observed = lift.mean()
    if n > EXACT_LIMIT:
        z = observed / (np.sqrt((lift ** 2).mean()) / math.sqrt(n))
        return 0.5 * math.erfc(z / math.sqrt(2))
    rng, at_least = np.random.default_rng(seed), 0
    for start in range(0, PERMUTATIONS, PERMUTATION_CHUNK):  # chunked: 4,000 x 10,000 signs would be 320 MB
        signs = rng.choice([-1.0, 1.0], size=(min(PERMUTATION_CHUNK, PERMUTATIONS - start), n))
        at_least += int(np.sum(signs @ lift / n >= observed - 1e-12))
    return float((1 + at_least) / (PERMUTATIONS + 1))


def compare(best_design: np.ndarray, best_real: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Win share, mean / median lift, the mean lift relative to the mean |best real| and both p-values, over the
    pairs where both sides are finite (`pairs` says how many)."""
    design, real = np.asarray(best_design, np.float64), np.asarray(best_real, np.float64)
    keep = np.isfinite(design) & np.isfinite(real)
    lift = design[keep] - real[keep]
    if not len(lift):
        return {}
    wins, losses = int((lift > 0).sum()), int((lift < 0).sum())
    scale = float(np.abs(real[keep]).mean())
    return {"pairs": float(len(lift)), "win_share": wins / len(lift), "mean_lift": float(lift.mean()),
            "median_lift": float(np.median(lift)), "relative_lift": float(lift.mean() / scale) if scale else math.nan,
            "p_sign": sign_test(wins, losses), "p_permutation": permutation_test(lift, seed)}


def format_verdicts(verdicts: dict[str, dict[str, float]]) -> str:
    """A markdown table: one row per judge."""
    lines = ["| judge | pairs | design wins | mean lift | median lift | lift / best real | p (sign) | p (perm.) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, v in verdicts.items():
        if v:
            lines.append(f"| {name} | {v['pairs']:.0f} | {v['win_share']:.1%} | {v['mean_lift']:+.3f} | "
                         f"{v['median_lift']:+.3f} | {v['relative_lift']:+.1%} | {v['p_sign']:.2g} | "
                         f"{v['p_permutation']:.2g} |")
    return "\n".join(lines)
