"""precision/recall and density/coverage against a full-matrix reference, limiting cases and the Gaussian expectation."""

import numpy as np
import pytest
import scipy.spatial.distance
import torch

from gankit.errors import UserError
from gankit.metrics import density_coverage, precision_recall
from gankit.metrics import prdc


def reference_prdc(real, fake, k):
    """Full distance matrices, radius = (k+1)-th smallest distance in a row (the first one is the point itself)."""
    real_radii = np.sort(scipy.spatial.distance.cdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(scipy.spatial.distance.cdist(fake, fake), axis=1)[:, k]
    dist = scipy.spatial.distance.cdist(real, fake)  # (real, fake)
    inside_real = dist < real_radii[:, None]
    precision = inside_real.any(axis=0).mean()
    recall = (dist < fake_radii[None, :]).any(axis=1).mean()
    density = inside_real.sum(axis=0).mean() / k
    coverage = (dist.min(axis=1) < real_radii).mean()
    return precision, recall, density, coverage


@pytest.mark.parametrize("chunk_rows", [1024, 37])  # one block, and many blocks with a ragged last one
def test_matches_full_matrix_reference(monkeypatch, chunk_rows):
    monkeypatch.setattr(prdc, "CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((250, 8)) + 0.8
    precision, recall, density, coverage = reference_prdc(real, fake, k=4)
    assert 0.05 < precision < 0.95 and 0.05 < recall < 0.95  # a case that exercises both sides of the radii
    assert precision_recall(real, fake, k=4) == pytest.approx((precision, recall), abs=1.5 / 250)
    assert density_coverage(real, fake, k=4) == pytest.approx((density, coverage), abs=1.5 / 250)


def test_identical_sets_are_perfect():
    real = np.random.default_rng(1).standard_normal((500, 16))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert density_coverage(real, real)[1] == 1.0


def test_far_apart_sets_score_zero():
    real = np.random.default_rng(2).standard_normal((500, 16))
    assert precision_recall(real, real + 1000) == (0.0, 0.0)
    assert density_coverage(real, real + 1000) == (0.0, 0.0)


def test_gaussian_density_is_one_and_coverage_is_one_minus_two_to_the_minus_k():
    # Naeem et al. 2020: for fake ~ real with equal sizes, E[density] = 1 and E[coverage] → 1 − 2^−k.
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(10_000, 64, generator=generator)
    fake = torch.randn(10_000, 64, generator=generator)
    density, coverage = density_coverage(real, fake, k=5)
    assert density == pytest.approx(1.0, abs=0.05)
    assert coverage == pytest.approx(1 - 2**-5, abs=0.02)


def test_user_errors():
    with pytest.raises(UserError, match=r"d=4.*d=5"):
        precision_recall(np.zeros((10, 4)), np.zeros((10, 5)))
    with pytest.raises(UserError, match="more than k samples"):
        density_coverage(np.zeros((5, 4)), np.zeros((10, 4)), k=5)
