"""kid against a double-loop MMD², plus subset sampling, seeding and the sign of the estimate."""

import numpy as np
import pytest
import torch

from gankit.errors import UserError
from gankit.metrics import kid


def naive_unbiased_mmd2(x, y):
    """Double loops over pairs: within-set means over i != j, cross-set mean over all pairs."""
    m, d = x.shape

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_single_full_subset_matches_double_loop_and_ignores_seed():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5)) + 0.5
    expected = naive_unbiased_mmd2(x, y)
    mean, std = kid(x, y, subsets=1, subset_size=30, seed=0)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert std == 0.0
    assert kid(x, y, subsets=1, subset_size=30, seed=99) == (mean, std)


def test_same_distribution_is_near_zero_and_shift_is_positive():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2000, 16)), rng.standard_normal((2000, 16))
    same_mean, same_std = kid(a, b, subsets=20, subset_size=500)
    shifted_mean, _ = kid(a, b + 0.5, subsets=20, subset_size=500)
    assert abs(same_mean) < 3 * same_std + 1e-3  # unbiased: centred on 0, can be slightly negative
    assert shifted_mean > 0.1 and shifted_mean > 10 * abs(same_mean)


def test_subset_size_is_capped_at_the_smaller_set():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((60, 4))
    assert kid(a, b, subsets=5, subset_size=10**6, seed=3) == kid(a, b, subsets=5, subset_size=50, seed=3)


def test_seed_reproducible_and_subsets_random():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 0.2
    assert kid(a, b, subsets=10, subset_size=100, seed=7) == kid(a, b, subsets=10, subset_size=100, seed=7)
    assert kid(a, b, subsets=10, subset_size=100, seed=7) != kid(a, b, subsets=10, subset_size=100, seed=8)
    assert kid(a, b, subsets=10, subset_size=100)[1] > 0.0


def test_torch_input_matches_numpy():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
    assert kid(torch.from_numpy(a), torch.from_numpy(b), subsets=3, subset_size=20) == pytest.approx(
        kid(a, b, subsets=3, subset_size=20), rel=1e-12
    )


def test_user_errors():
    with pytest.raises(UserError, match=r"d=4.*d=5"):
        kid(np.zeros((10, 4)), np.zeros((10, 5)))
    with pytest.raises(UserError, match="subsets"):
        kid(np.zeros((1, 4)), np.zeros((10, 4)))
    with pytest.raises(UserError, match="subsets"):
        kid(np.zeros((10, 4)), np.zeros((10, 4)), subsets=0)
