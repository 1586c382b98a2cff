"""kid against a double-loop MMD² and torch-fidelity's subset draw, plus refusals, seeding, the sign of the estimate,
and the subset settings `gankit eval` and `gankit fid` pick."""

import importlib
import math

import numpy as np
import pytest
import torch

from gankit.errors import UserError
from gankit.metrics import Extracted, FeatureStats, kid
from gankit.report import compare

kid_module = importlib.import_module("gankit.metrics.kid")  # the package's `kid` attribute is the function


def naive_unbiased_mmd2(x, y):
    """Double loops over pairs: within-set means over i != j, cross-set mean over all pairs."""
    m, d = x.shape

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_single_full_subset_matches_double_loop_and_has_no_std():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5)) + 0.5
    expected = naive_unbiased_mmd2(x, y)
    mean, std = kid(x, y, subsets=1, subset_size=30, seed=0)
    assert mean == pytest.approx(expected, rel=1e-12)
    assert math.isnan(std)  # one estimate has no spread to report
    assert kid(x, y, subsets=1, subset_size=30, seed=99)[0] == pytest.approx(mean, rel=1e-12)  # whole sets, any order


def test_draws_subsets_as_torch_fidelity():
    # torch-fidelity's kid_features_to_metric, transcribed: one RandomState, subsets of a then b drawn in turn.
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((120, 6)), rng.standard_normal((90, 6)) + 0.3
    draw = np.random.RandomState(11)
    mmds = []
    for _ in range(7):
        f1, f2 = a[draw.choice(len(a), 40, replace=False)], b[draw.choice(len(b), 40, replace=False)]
        mmds.append(naive_unbiased_mmd2(f1, f2))
    assert kid(a, b, subsets=7, subset_size=40, seed=11) == pytest.approx((np.mean(mmds), np.std(mmds)), rel=1e-10)


def test_no_row_twice_within_a_subset(monkeypatch):
    subsets = []
    monkeypatch.setattr(kid_module, "_mmd2_unbiased", lambda x, y: subsets.extend([x, y]) or 0.0)
    rows = np.arange(50.0)[:, None].repeat(3, axis=1)  # row i is (i, i, i): rows tell which sample they are
    kid(rows, rows[:45], subsets=20, subset_size=44, seed=0)  # drawn with replacement, 44 of 45 would repeat a row
    assert len(subsets) == 40 and all(len(np.unique(s[:, 0])) == 44 for s in subsets)


def test_same_distribution_is_near_zero_and_shift_is_positive():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2000, 16)), rng.standard_normal((2000, 16))
    same_mean, same_std = kid(a, b, subsets=20, subset_size=500)
    shifted_mean, _ = kid(a, b + 0.5, subsets=20, subset_size=500)
    assert abs(same_mean) < 3 * same_std + 1e-3  # unbiased: centred on 0, can be slightly negative
    assert shifted_mean > 0.1 and shifted_mean > 10 * abs(same_mean)


def test_subset_larger_than_a_set_is_a_user_error_naming_the_counts():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((60, 4))
    with pytest.raises(UserError, match=r"subset_size=1000 is larger than a set \(50 and 60 samples\)") as info:
        kid(a, b, subsets=5)
    assert "subset_size <= 50" in info.value.hint
    with pytest.raises(UserError, match="subset_size=51"):
        kid(a, b, subsets=5, subset_size=51)
    assert math.isfinite(kid(a, b, subsets=5, subset_size=50)[1])


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
    with pytest.raises(UserError, match="subset_size >= 2"):
        kid(np.zeros((1, 4)), np.zeros((10, 4)), subset_size=1)
    with pytest.raises(UserError, match="subsets >= 1"):
        kid(np.zeros((10, 4)), np.zeros((10, 4)), subsets=0, subset_size=10)


def extracted(n: int, seed: int) -> Extracted:
    feats = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 4)))
    stats = FeatureStats()
    stats.update(feats)
    return Extracted(stats, feats)


@pytest.mark.parametrize(("n_real", "n_fake", "size", "subsets"), [
    (1200, 1100, 1000, 5),  # papers' subsets of 1,000
    (60, 80, 60, 5),  # small sets: all of the smaller one, the other drawn afresh each time
    (60, 60, 60, 1),  # both whole: every subset would be the same, so one estimate and no std
])
def test_eval_and_fid_pick_and_record_the_subsets(monkeypatch, n_real, n_fake, size, subsets):
    monkeypatch.setattr(compare, "KID_SUBSETS", 5)
    values, settings = compare.distribution_metrics(extracted(n_real, 0), extracted(n_fake, 1), with_kid=True,
                                                    with_prdc=False, seed=3)
    assert settings["kid"]["subset_size"] == size and settings["kid"]["subsets"] == subsets
    assert ("kid_std" in values) == (subsets > 1)
    assert values["kid"] == pytest.approx(kid(extracted(n_real, 0).features, extracted(n_fake, 1).features,
                                              subsets, size, seed=3)[0], rel=1e-12)
