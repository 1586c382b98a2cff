"""precision/recall and density/coverage against a full-matrix reference, limiting cases and the Gaussian expectation."""

import numpy as np
import pytest
import scipy.spatial.distance
import torch

from gankit.errors import UserError
from gankit.metrics import density_coverage, precision_recall
from gankit.metrics import prdc


def reference_prdc(real, fake, k):
    """Full distance matrices, radius = (k+1)-th smallest distance in a row (the first one is the point itself);
    precision/recall count the radius as inside (Kynkäänniemi et al.), density/coverage do not (Naeem et al.)."""
    real_radii = np.sort(scipy.spatial.distance.cdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(scipy.spatial.distance.cdist(fake, fake), axis=1)[:, k]
    dist = scipy.spatial.distance.cdist(real, fake)  # (real, fake)
    inside_real = dist < real_radii[:, None]
    precision = (dist <= real_radii[:, None]).any(axis=0).mean()
    recall = (dist <= fake_radii[None, :]).any(axis=1).mean()
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


def test_features_far_from_zero_keep_their_distances():
    """Catches distances taken without centring: ||a||² + ||b||² − 2a·b in float32 cancels to noise when the features
    sit far from zero (as pooled activations of a deep net can) and the spread is small."""
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((200, 8)) + 1e4, rng.standard_normal((180, 8)) + 1e4 + 0.8
    precision, recall, density, coverage = reference_prdc(real, fake, k=4)
    assert precision_recall(real, fake, k=4) == pytest.approx((precision, recall), abs=1.5 / 180)
    assert density_coverage(real, fake, k=4) == pytest.approx((density, coverage), abs=1.5 / 180)


def exact_precision_recall(real, fake, k, inside):
    """Precision and recall from int64 squared distances, `inside(distance², radius²)` deciding membership."""
    def sq_dist(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)

    def radii(x):
        return np.sort(sq_dist(x, x) + np.diag(np.full(len(x), np.iinfo(np.int64).max)), axis=1)[:, k - 1]

    dist = sq_dist(real, fake)
    return (inside(dist, radii(real)[:, None]).any(axis=0).mean(),
            inside(dist, radii(fake)[None, :]).any(axis=1).mean())


def test_a_sample_at_exactly_the_radius_is_inside():
    # 1-NN radii of the real points 0, 3, 7 are 3, 3, 4; the fakes -3 and 11 lie exactly on the balls of 0 and 7.
    real, fake = np.array([[0], [3], [7]]), np.array([[-3], [11], [30]])
    assert precision_recall(real, fake, k=1)[0] == pytest.approx(2 / 3)  # < would give 0
    assert precision_recall(fake, real, k=1)[1] == pytest.approx(2 / 3)  # the same balls, seen by recall


def test_integer_features_tie_exactly_as_in_integer_arithmetic():
    # Pixel-level-like integer features tie often; the float32 distances must tie exactly too, whatever the mean.
    rng = np.random.default_rng(0)
    real, fake = rng.integers(0, 4, (150, 7)), rng.integers(0, 4, (130, 7)) + rng.integers(0, 2, 7)
    expected = exact_precision_recall(real, fake, 3, np.less_equal)
    assert exact_precision_recall(real, fake, 3, np.less) != expected  # ties decide this case
    assert precision_recall(real, fake, k=3) == expected


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
