"""FeatureStats: streaming equals np.cov, merges equal concatenation, memory is O(d²), files round-trip safely."""

import tracemalloc

import numpy as np
import pytest
import torch

from gankit.errors import UserError
from gankit.metrics import FeatureStats, frechet_distance


def streamed(feats, batch_sizes):
    stats = FeatureStats()
    for batch in np.split(feats, np.cumsum(batch_sizes)[:-1]):
        stats.update(batch)
    return stats


def test_streaming_matches_numpy_over_uneven_batches():
    feats = np.random.default_rng(0).standard_normal((300, 12)) * 3 + 1
    stats = streamed(feats, [1, 0, 100, 57, 142])  # a one-row batch and an empty one included
    assert stats.n == 300
    np.testing.assert_allclose(stats.mu, feats.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(feats, rowvar=False), rtol=1e-10, atol=1e-12)


def test_torch_batches_are_accumulated_in_float64():
    feats = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    stats = FeatureStats()
    for batch in feats.split(64):
        stats.update(batch)
    expected = np.cov(feats.double().numpy(), rowvar=False)
    assert stats.sigma.dtype == np.float64
    np.testing.assert_allclose(stats.sigma, expected, rtol=1e-10, atol=1e-12)


def test_features_far_from_zero_keep_their_precision():
    # Var = 1 around a mean of 1e6: Σxxᵀ − n μμᵀ would cancel 12 of float64's 16 digits; the (n, mean, M2) merge does not.
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((4000, 4))
    stats = streamed(noise + 1e6, [1000] * 4)
    np.testing.assert_allclose(stats.sigma, np.cov(noise, rowvar=False), rtol=1e-8, atol=1e-9)


def test_merge_equals_one_pass_over_the_concatenation():
    rng = np.random.default_rng(2)
    feats_a, feats_b = rng.standard_normal((150, 10)), rng.standard_normal((250, 10)) * 2 + 5
    merged = streamed(feats_a, [150])
    merged.merge(streamed(feats_b, [100, 150]))
    merged.merge(FeatureStats())  # merging an empty FeatureStats changes nothing
    whole = np.concatenate([feats_a, feats_b])
    assert merged.n == 400
    np.testing.assert_allclose(merged.mu, whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.sigma, np.cov(whole, rowvar=False), rtol=1e-10, atol=1e-12)


def test_merge_into_empty_copies_instead_of_aliasing():
    source = streamed(np.random.default_rng(3).standard_normal((50, 3)), [50])
    target = FeatureStats()
    target.merge(source)
    target.update(np.full((10, 3), 100.0))
    assert source.n == 50 and target.n == 60
    assert np.abs(source.mu).max() < 1.0


def test_dimension_mismatch_is_a_user_error():
    stats = streamed(np.zeros((4, 8)), [4])
    with pytest.raises(UserError, match=r"d=8.*d=6"):
        stats.update(np.zeros((4, 6)))
    with pytest.raises(UserError, match=r"d=8.*d=6"):
        stats.merge(streamed(np.zeros((4, 6)), [4]))


def test_bad_batches_are_user_errors():
    stats = FeatureStats()
    with pytest.raises(UserError, match=r"expected \(N, d\)"):
        stats.update(np.zeros(8))
    with pytest.raises(UserError, match="NaN"):
        stats.update(np.array([[0.0, np.nan]]))
    stats.update(np.zeros((1, 2)))
    with pytest.raises(UserError, match="at least 2 samples"):
        _ = stats.sigma


def test_memory_does_not_grow_with_sample_count():
    def peak_bytes(n_batches):
        rng = np.random.default_rng(4)
        tracemalloc.start()
        stats = FeatureStats()
        for _ in range(n_batches):
            stats.update(rng.standard_normal((512, 64)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert stats.n == 512 * n_batches
        return peak

    batch_bytes = 512 * 64 * 8
    # Keeping the batches would add 45 × 256 KiB here; the bound allows a fraction of one batch.
    assert peak_bytes(50) <= peak_bytes(5) + batch_bytes // 4


def test_save_load_round_trip_and_merge_after_load(tmp_path):
    rng = np.random.default_rng(5)
    feats_a, feats_b = rng.standard_normal((120, 6)), rng.standard_normal((80, 6))
    path = tmp_path / "ref.npz"
    streamed(feats_a, [60, 60]).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz"]  # no temp file left behind
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["mu", "n", "sigma"]
    loaded = FeatureStats.load(path)
    assert loaded.n == 120
    np.testing.assert_allclose(loaded.sigma, np.cov(feats_a, rowvar=False), rtol=1e-12)
    loaded.merge(streamed(feats_b, [80]))
    np.testing.assert_allclose(loaded.sigma, np.cov(np.concatenate([feats_a, feats_b]), rowvar=False), rtol=1e-10)


def test_load_reports_missing_key_with_file_and_key(tmp_path):
    path = tmp_path / "pytorch-fid-style.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(UserError, match="'n'") as excinfo:
        FeatureStats.load(path)
    assert str(path) in str(excinfo.value)


def test_load_reports_wrong_shape_with_file_and_key(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(3), n=np.int64(10))
    with pytest.raises(UserError, match="'sigma'") as excinfo:
        FeatureStats.load(path)
    assert str(path) in str(excinfo.value)


def test_load_refuses_statistics_of_one_sample(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, mu=np.zeros(4), sigma=np.eye(4), n=np.int64(1))  # a covariance needs two samples
    with pytest.raises(UserError, match="need >= 2"):
        FeatureStats.load(path)


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, mu=np.array([object()], dtype=object), sigma=np.eye(1), n=np.int64(3))
    with pytest.raises(UserError, match=str(path)):
        FeatureStats.load(path)


def test_load_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="absent.npz does not exist"):
        FeatureStats.load(tmp_path / "absent.npz")


def test_frechet_to_calls_frechet_distance():
    rng = np.random.default_rng(6)
    real = streamed(rng.standard_normal((400, 5)), [400])
    fake = streamed(rng.standard_normal((400, 5)) + 2.0, [400])
    expected = frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma)
    assert real.frechet_to(fake) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(5 * 2.0**2, rel=0.1)  # the mean shift dominates: ||2·1||² = 20


def test_state_round_trip_is_what_processes_exchange():
    feats = np.random.default_rng(4).standard_normal((120, 6)) + 3
    stats = streamed(feats, [50, 70])
    again = FeatureStats.from_state({k: v.copy() for k, v in stats.state().items()})
    assert again.n == 120
    np.testing.assert_array_equal(again.mu, stats.mu)
    np.testing.assert_array_equal(again.sigma, stats.sigma)
    with pytest.raises(UserError, match="no samples yet"):
        FeatureStats().state()
