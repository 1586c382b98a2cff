"""Fréchet distance between two Gaussians, the formula behind FID, computed from eigenvalues instead of sqrtm."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.linalg

from gankit.errors import UserError


def frechet_distance(
    mu1: npt.ArrayLike, sigma1: npt.ArrayLike, mu2: npt.ArrayLike, sigma2: npt.ArrayLike
) -> float:
    """||mu1 − mu2||² + Tr(S1) + Tr(S2) − 2 Tr((S1 S2)^½) in float64; FID when the Gaussians fit Inception features."""
    mu1, sigma1 = _as_gaussian(mu1, sigma1, "1")
    mu2, sigma2 = _as_gaussian(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise UserError(
            f"frechet_distance: statistics 1 have d={mu1.shape[0]} features but statistics 2 have d={mu2.shape[0]}",
            hint="compute both statistics with the same feature extractor and layer",
        )
    diff = mu1 - mu2
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * _trace_sqrt_product(sigma1, sigma2)
    # The distance is >= 0; for (nearly) identical statistics round-off can leave it at -1e-12.
    return max(float(distance), 0.0)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^½) = Σ √λᵢ over the eigenvalues λᵢ of S1 S2, which are real and ≥ 0 when S1, S2 are PSD."""
    try:
        # S1 = L Lᵀ (Cholesky), and S1 S2 = L (Lᵀ S2 L) L⁻¹ is similar to the symmetric Lᵀ S2 L. LAPACK's sygv with
        # itype=2 does exactly this (potrf, then Lᵀ S2 L, then a symmetric eigensolver), several times faster than a
        # Schur-based sqrtm of the non-symmetric S1 S2. It never inverts L, so tiny pivots cost no accuracy.
        eigvals = scipy.linalg.eigh(sigma2, sigma1, type=2, eigvals_only=True, driver="gv", check_finite=False)
    except np.linalg.LinAlgError:
        # S1 singular (e.g. fewer samples than dimensions): factor S1 = F Fᵀ with F = V √Λ from its eigendecomposition,
        # clamping round-off negatives in Λ; Fᵀ S2 F has the same non-zero eigenvalues as S1 S2.
        eigvals_1, eigvecs_1 = np.linalg.eigh(sigma1)
        factor = eigvecs_1 * np.sqrt(np.clip(eigvals_1, 0.0, None))
        eigvals = np.linalg.eigvalsh(factor.T @ sigma2 @ factor)
    # Eigenvalues that should be 0 come out as ±1e-16-ish round-off: clamp before the square root.
    return float(np.sqrt(np.clip(eigvals, 0.0, None)).sum())


def _as_gaussian(mu: npt.ArrayLike, sigma: npt.ArrayLike, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one (mean, covariance) pair: shapes (d,) and (d, d), finite values; return them as float64 arrays."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise UserError(
            f"frechet_distance: mu{which} has shape {mu.shape} and sigma{which} has shape {sigma.shape}; "
            f"expected (d,) and (d, d)",
            hint="pass a mean vector and its covariance matrix, e.g. FeatureStats.mu and FeatureStats.sigma",
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise UserError(
            f"frechet_distance: mu{which} or sigma{which} contains NaN or inf",
            hint="check the features they were computed from (a diverged generator produces NaN images)",
        )
    return mu, sigma
