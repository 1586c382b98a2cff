"""Time gankit's eigenvalue-based frechet_distance against pytorch-fid's scipy sqrtm route on the same covariances.

    python benchmarks/frechet.py [--quick] [--solvers]

Prints a table (method, d, first call and best seconds, |Δ|) and, as the last line, a JSON object for the largest d.
The first call at each d is shown because `gankit eval` computes one FID per process. `--solvers` also times, at the
largest d, the eigenvalue solve alone (the bulk of the work) with torch's LAPACK (MKL) and scipy's drivers
(OpenBLAS), and the alternative route that runs everything in torch: what bounds the speedup on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch

from gankit.metrics import frechet_distance

SAMPLES = 4096  # features per set: covariances are full rank up to d = 4096, like a 10k-image FID at d = 2048
BLOCK = 256  # rows per block of the torch route's triangular products


def sqrtm_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Reference: pytorch-fid's formula with a full (Schur) matrix square root and its eps·I fallback."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * 1e-6
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


def torch_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The alternative measured with --solvers: Cholesky, Lᵀ S2 L by block products that skip L's zeros and the upper
    triangle ((4/3)d³ flops), and eigenvalues only, all in torch (MKL on x86); positive definite S1 only."""
    lower, sym = torch.linalg.cholesky(torch.from_numpy(sigma1)), torch.from_numpy(sigma2)
    d = len(sigma1)
    out = torch.empty_like(sym)  # Wᵀ = Lᵀ S2, then overwritten block row by block row with the lower triangle of Lᵀ S2 L
    for j in range(0, d, BLOCK):
        rows = slice(j, min(d, j + BLOCK))
        torch.mm(lower[j:, rows].T, sym[j:], out=out[rows])
    for i in range(0, d, BLOCK):
        rows = slice(i, min(d, i + BLOCK))
        out[rows, : rows.stop] = lower[i:, rows].T @ out[: rows.stop, i:].T
    eigvals = torch.linalg.eigvalsh(out, UPLO="L").clamp(min=0)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * float(eigvals.sqrt().sum()))


def solver_times(sigma1: np.ndarray, sigma2: np.ndarray, repeats: int) -> dict[str, tuple[float, float]]:
    """(first, best) seconds of the eigenvalue solve alone on the same symmetric Lᵀ S2 L, per library and driver."""
    factor = np.linalg.cholesky(sigma1)
    product = factor.T @ sigma2 @ factor
    solvers = {"torch eigvalsh": lambda: float(torch.linalg.eigvalsh(torch.from_numpy(product)).sum())}
    for driver in ("evd", "evr", "ev"):
        solvers[f"scipy {driver}"] = lambda driver=driver: float(
            scipy.linalg.eigh(product, eigvals_only=True, driver=driver, check_finite=False).sum())
    return {name: timed(solve, repeats)[:2] for name, solve in solvers.items()}


def gaussian_stats(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of SAMPLES correlated features: Gaussian noise through a random (d, d) mixing matrix."""
    feats = rng.standard_normal((SAMPLES, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + rng.standard_normal(d)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def timed(fn: Callable[[], float], repeats: int) -> tuple[float, float, float]:
    """(wall time of the first call, fastest of `repeats` calls, the value returned)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return times[0], min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repeat per method instead of three")
    parser.add_argument("--solvers", action="store_true",
                        help="also time the eigenvalue solve alone per library, and the all-torch route")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    rng = np.random.default_rng(0)
    print(f"{torch.get_num_threads()} torch threads")
    print(f"{'method':<26} {'d':>5} {'first s':>8} {'best s':>8} {'|Δ|':>9}")
    for d in (512, 2048):
        stats = (*gaussian_stats(rng, d), *gaussian_stats(rng, d))
        gankit_first, gankit_s, gankit_value = timed(lambda: frechet_distance(*stats), repeats)
        sqrtm_first, sqrtm_s, sqrtm_value = timed(lambda: sqrtm_frechet_distance(*stats), repeats)
        summary = {
            "d": d,
            "fid": round(sqrtm_value, 6),
            "gankit_s": round(gankit_s, 4),
            "gankit_first_s": round(gankit_first, 4),
            "sqrtm_s": round(sqrtm_s, 4),
            "speedup": round(sqrtm_s / gankit_s, 1),
            "abs_diff": abs(gankit_value - sqrtm_value),
            "repeats": repeats,
        }
        print(f"{'gankit':<26} {d:>5} {gankit_first:>8.3f} {gankit_s:>8.3f} {summary['abs_diff']:>9.2e}")
        print(f"{'sqrtm':<26} {d:>5} {sqrtm_first:>8.3f} {sqrtm_s:>8.3f} {'(ref)':>9}")
    if args.solvers:  # at the largest d
        first, best, value = timed(lambda: torch_frechet_distance(*stats), repeats)
        summary["torch_route_s"], summary["torch_route_first_s"] = round(best, 4), round(first, 4)
        print(f"{'torch route':<26} {d:>5} {first:>8.3f} {best:>8.3f} {abs(value - sqrtm_value):>9.2e}")
        summary["eigvals_s"] = {}
        for name, (first, best) in solver_times(stats[1], stats[3], repeats).items():
            summary["eigvals_s"][name] = round(best, 4)
            print(f"{'eig only, ' + name:<26} {d:>5} {first:>8.3f} {best:>8.3f}")
        # The speedup if the Cholesky and the products cost nothing: sqrtm against the fastest eigenvalue solve.
        summary["speedup_bound"] = round(sqrtm_s / min(summary["eigvals_s"].values()), 1)
    print(json.dumps(summary))  # the largest d, as the last line for scripts


if __name__ == "__main__":
    main()
