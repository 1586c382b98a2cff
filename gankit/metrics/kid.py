"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel over subsets."""

from __future__ import annotations

import numpy as np

from gankit.errors import UserError
from gankit.metrics.stats import Features, as_feature_pair


def kid(
    feats_a: Features, feats_b: Features, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD² between random equal-size subsets of two (N, d) feature sets, in float64.

    Unlike FID it is unbiased in the sample count, so small evaluations compare fairly with large ones.
    """
    a, b = as_feature_pair(feats_a, feats_b, "kid: feats_a", "feats_b")
    m = min(subset_size, len(a), len(b))
    if subsets < 1 or m < 2:
        raise UserError(
            f"kid: need subsets >= 1 and subsets of >= 2 rows; got subsets={subsets}, subset_size={subset_size}, "
            f"{len(a)} and {len(b)} samples",
            hint="pass more samples or larger subsets",
        )
    rng = np.random.default_rng(seed)
    estimates = [_mmd2_unbiased(_subset(a, m, rng), _subset(b, m, rng)) for _ in range(subsets)]
    return float(np.mean(estimates)), float(np.std(estimates))


def _subset(x: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct random rows of x; all rows, unshuffled, when m == len(x) (so that case is deterministic)."""
    return x if m == len(x) else x[rng.choice(len(x), size=m, replace=False)]


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x·y / d + 1)³ for every pair of rows: (m, d), (m, d) -> (m, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """MMD² = E k(x, x') + E k(y, y') − 2 E k(x, y), each expectation estimated without bias."""
    m = len(x)
    k_xx, k_yy = _polynomial_kernel(x, x), _polynomial_kernel(y, y)
    # Within a set the pairs i = j are a sample with itself, so the unbiased mean skips the diagonal: m(m − 1) pairs.
    # x and y are independent draws, so all m² cross pairs are fair (the torch-fidelity / Bińkowski 'unbiased' form).
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * _polynomial_kernel(x, y).mean())
