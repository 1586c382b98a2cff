"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel over subsets."""

from __future__ import annotations

import math

import numpy as np

from gankit.errors import UserError
from gankit.metrics.stats import Features, as_feature_pair


def kid(
    feats_a: Features, feats_b: Features, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD² between random equal-size subsets of two (N, d) feature sets, in float64.

    Unlike FID it is unbiased in the sample count, so small evaluations compare fairly with large ones. Subsets are
    drawn as torch-fidelity draws them (so equal features and seed give its numbers): each a prefix of a random
    permutation, no row twice; like torch-fidelity it refuses a subset larger than a set, since a silently smaller
    subset would not be the KID asked for. The std is nan for a single subset, where it would say nothing.
    """
    a, b = as_feature_pair(feats_a, feats_b, "kid: feats_a", "feats_b")
    if subsets < 1 or subset_size < 2:
        raise UserError(f"kid: need subsets >= 1 and subset_size >= 2; got subsets={subsets}, "
                        f"subset_size={subset_size}", hint="KID needs at least one subset of at least 2 rows")
    if subset_size > min(len(a), len(b)):
        raise UserError(f"kid: subset_size={subset_size} is larger than a set ({len(a)} and {len(b)} samples)",
                        hint=f"pass subset_size <= {min(len(a), len(b))}, or more samples")
    # torch-fidelity's generator, whose choice(n, m, replace=False) is permutation(n)[:m]; it takes seeds < 2³² only.
    rng = np.random.RandomState(seed % 2**32)
    estimates = [_mmd2_unbiased(a[rng.permutation(len(a))[:subset_size]], b[rng.permutation(len(b))[:subset_size]])
                 for _ in range(subsets)]
    spread = float(np.std(estimates)) if subsets > 1 else math.nan
    return float(np.mean(estimates)), spread


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
