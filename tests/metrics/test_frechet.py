"""frechet_distance against hand-computed values and pytorch-fid's scipy sqrtm route, including singular covariances."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from gankit.errors import UserError
from gankit.metrics import frechet_distance


def sqrtm_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Reference: pytorch-fid's route, a full matrix square root with an eps·I offset when the product is singular."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns about singular products; the fallback below handles them
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3), "reference sqrtm has a large imaginary part"
        covmean = covmean.real
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def gaussian_stats(rng, n, d, scale=1.0, shift=0.0):
    feats = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * scale / np.sqrt(d) + shift
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def test_diagonal_covariances_match_hand_computed_value():
    # ||(0,0) − (3,4)||² = 25; for commuting covariances Tr(S1 + S2 − 2(S1 S2)^½) = Σ (√a − √b)² = (1−2)² + (2−3)² = 2
    value = frechet_distance([0.0, 0.0], np.diag([1.0, 4.0]), [3.0, 4.0], np.diag([4.0, 9.0]))
    assert value == pytest.approx(27.0, abs=1e-12)


def test_identical_statistics_give_zero():
    mu, sigma = gaussian_stats(np.random.default_rng(0), 500, 32)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize(
    ("n1", "n2", "d"),
    [
        (2000, 2000, 32),  # well-conditioned: the Cholesky route
        (1000, 100, 256),  # S1 positive definite, S2 rank 99
        (100, 100, 256),  # both rank 99: fewer samples than dimensions
        (100, 1000, 256),  # S1 singular: the eigendecomposition fallback
    ],
)
def test_matches_pytorch_fid_sqrtm_route(n1, n2, d):
    rng = np.random.default_rng(n1 + n2 + d)
    mu1, sigma1 = gaussian_stats(rng, n1, d)
    mu2, sigma2 = gaussian_stats(rng, n2, d, scale=1.5, shift=0.3)
    expected = sqrtm_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert abs(frechet_distance(mu1, sigma1, mu2, sigma2) - expected) < 1e-3
    assert abs(frechet_distance(mu2, sigma2, mu1, sigma1) - expected) < 1e-3  # symmetric in its arguments


def test_exactly_singular_covariance_takes_the_fallback_and_matches():
    rng = np.random.default_rng(1)
    mu1, sigma1 = gaussian_stats(rng, 400, 64)
    sigma1[:, 0] = sigma1[0, :] = 0.0  # a constant feature: zero variance, so no Cholesky factor exists
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(sigma1)
    mu2, sigma2 = gaussian_stats(rng, 400, 64, shift=1.0)
    expected = sqrtm_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert abs(frechet_distance(mu1, sigma1, mu2, sigma2) - expected) < 1e-3


def test_accepts_torch_tensors():
    mu1, sigma1 = gaussian_stats(np.random.default_rng(2), 300, 16)
    mu2, sigma2 = gaussian_stats(np.random.default_rng(3), 300, 16)
    from_numpy = frechet_distance(mu1, sigma1, mu2, sigma2)
    from_torch = frechet_distance(*(torch.from_numpy(a) for a in (mu1, sigma1, mu2, sigma2)))
    assert from_torch == pytest.approx(from_numpy, rel=1e-12)
    assert from_numpy > 0.1


def test_dimension_mismatch_names_both_dimensions():
    with pytest.raises(UserError, match=r"d=8.*d=4") as excinfo:
        frechet_distance(np.zeros(8), np.eye(8), np.zeros(4), np.eye(4))
    assert "same feature extractor" in str(excinfo.value)


def test_mean_and_covariance_shapes_must_agree():
    with pytest.raises(UserError, match="sigma1"):
        frechet_distance(np.zeros(8), np.eye(4), np.zeros(8), np.eye(8))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_a_user_error(bad):
    sigma = np.eye(4)
    sigma[1, 2] = bad
    with pytest.raises(UserError, match="NaN or inf"):
        frechet_distance(np.zeros(4), np.eye(4), np.zeros(4), sigma)
