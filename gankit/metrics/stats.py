"""Streaming feature statistics (mean, covariance) in float64, mergeable across processes and cached as .npz."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from ..data.npz import read_npz
from ..errors import UserError
from ..io import atomic_path
from .frechet import frechet_distance

Features = npt.ArrayLike | torch.Tensor


def as_feature_matrix(feats: Features, name: str) -> np.ndarray:
    """Features (numpy or torch, shape (N, d)) as a finite float64 numpy matrix; UserError otherwise."""
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().double().numpy()
    matrix = np.asarray(feats, dtype=np.float64)
    if matrix.ndim != 2:
        raise UserError(
            f"{name} has shape {matrix.shape}; expected (N, d): one row of d features per sample",
            hint="flatten each sample's features, e.g. feats.reshape(len(feats), -1)",
        )
    if not np.isfinite(matrix).all():
        raise UserError(f"{name} contains NaN or inf", hint="check the generator's samples and the feature extractor")
    return matrix


def as_feature_pair(a: Features, b: Features, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Two feature sets as float64 matrices with the same number of features d; UserError otherwise."""
    mat_a, mat_b = as_feature_matrix(a, name_a), as_feature_matrix(b, name_b)
    if mat_a.shape[1] != mat_b.shape[1]:
        raise UserError(f"{name_a} have d={mat_a.shape[1]} features but {name_b} have d={mat_b.shape[1]}",
                        hint="extract both sets with the same feature extractor and layer")
    return mat_a, mat_b


class FeatureStats:
    """Running mean and unbiased covariance of (N, d) feature batches; memory O(d²) whatever the number of samples."""

    # State (n, mean, M2) with M2 = Σ (x − mean)(x − mean)ᵀ, combined by Chan et al.'s pairwise update: unlike a raw
    # Σ x xᵀ − n mean meanᵀ it never subtracts two large, nearly equal numbers when features sit far from 0.

    def __init__(self) -> None:
        self._n = 0
        self._mean: np.ndarray | None = None  # (d,)
        self._m2: np.ndarray | None = None  # (d, d)

    @property
    def n(self) -> int:
        """Number of samples seen."""
        return self._n

    @property
    def dim(self) -> int | None:
        """Feature dimension d, or None before the first update."""
        return None if self._mean is None else self._mean.shape[0]

    @property
    def mu(self) -> np.ndarray:
        """Mean feature vector, shape (d,)."""
        if self._mean is None:
            raise UserError("FeatureStats.mu: no samples yet", hint="call update(feats) with at least one batch first")
        return self._mean.copy()

    @property
    def sigma(self) -> np.ndarray:
        """Unbiased covariance, shape (d, d): the same as np.cov(all_feats, rowvar=False)."""
        if self._m2 is None or self._n < 2:
            raise UserError(
                f"FeatureStats.sigma: a covariance needs at least 2 samples, got {self._n}",
                hint="feed more samples with update(feats)",
            )
        return self._m2 / (self._n - 1)

    def update(self, feats: Features) -> None:
        """Add a batch of features of shape (N, d) (numpy array or torch tensor)."""
        batch = as_feature_matrix(feats, "FeatureStats.update: feats")
        if len(batch) == 0:
            return
        batch_mean = batch.mean(axis=0)
        centered = batch - batch_mean
        self._absorb(len(batch), batch_mean, centered.T @ centered)

    def merge(self, other: FeatureStats) -> None:
        """Add another FeatureStats in place (e.g. one per process): the result equals one pass over both sets."""
        if other._n > 0:
            self._absorb(other._n, other._mean, other._m2)

    def state(self) -> dict[str, np.ndarray]:
        """(n, mean, M2) as float64 arrays, what processes exchange to merge their statistics (after the first
        update)."""
        if self._mean is None:
            raise UserError("FeatureStats.state: no samples yet",
                            hint="call update(feats) with at least one batch first")
        return {"n": np.array([float(self._n)]), "mean": self._mean.copy(), "m2": self._m2.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> FeatureStats:
        """Inverse of state()."""
        stats = cls()
        if state["n"][0] > 0:
            stats._absorb(int(state["n"][0]), np.asarray(state["mean"], dtype=np.float64),
                          np.asarray(state["m2"], dtype=np.float64))
        return stats

    def frechet_to(self, other: FeatureStats) -> float:
        """Fréchet distance between the Gaussians fitted to these and the other statistics (FID for Inception)."""
        return frechet_distance(self.mu, self.sigma, other.mu, other.sigma)

    def save(self, path: str | os.PathLike) -> None:
        """Write arrays mu (d,), sigma (d, d) and n () to an .npz file, atomically (temp file + rename)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=self.mu, sigma=self.sigma, n=np.int64(self._n))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read statistics written by save(); never unpickles, so a file cannot run code."""
        arrays = _read_npz(Path(path), ("mu", "sigma", "n"))
        mu, sigma, n = arrays["mu"], arrays["sigma"], arrays["n"]
        d = len(mu) if mu.ndim == 1 else "d"
        expected = {"mu": ((d,), np.floating), "sigma": ((d, d), np.floating), "n": ((), np.integer)}
        for key, (shape, kind) in expected.items():
            if arrays[key].shape != shape or not np.issubdtype(arrays[key].dtype, kind):
                raise UserError(
                    f"{path}: array '{key}' has shape {arrays[key].shape} and dtype {arrays[key].dtype}; "
                    f"expected shape {shape} of {kind.__name__} values",
                    hint="rebuild the file with FeatureStats.save",
                )
        if n < 2 or not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise UserError(
                f"{path}: array 'n' is {n} (need >= 2) or arrays 'mu'/'sigma' contain NaN or inf",
                hint="rebuild the file with FeatureStats.save",
            )
        stats = cls()
        stats._absorb(int(n), mu.astype(np.float64), sigma.astype(np.float64) * (int(n) - 1))
        return stats

    def _absorb(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        """Combine (n_b, mean_b, M2_b) into the running state (Chan, Golub & LeVeque 1979)."""
        if self._mean is None:
            self._n, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        if mean_b.shape != self._mean.shape:
            raise UserError(
                f"FeatureStats holds d={self._mean.shape[0]} features but got d={mean_b.shape[0]}",
                hint="use one FeatureStats per feature extractor and layer",
            )
        n = self._n + n_b
        delta = mean_b - self._mean
        # mean = mean_a + δ n_b / n;  M2 = M2_a + M2_b + δ δᵀ n_a n_b / n
        self._mean += delta * (n_b / n)
        self._m2 += m2_b
        self._m2 += np.outer(delta, delta * (self._n * n_b / n))
        self._n = n


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a statistics .npz (read by the one safe npz reader), or a UserError naming file and key."""
    arrays = read_npz(path)
    for key in keys:
        if key not in arrays:
            raise UserError(f"{path}: missing array '{key}' (found {sorted(arrays)})",
                            hint="pass a statistics file written by FeatureStats.save")
    return {key: arrays[key] for key in keys}
