"""Time gankit's eigenvalue-based frechet_distance against pytorch-fid's scipy sqrtm route on the same covariances.

    python benchmarks/frechet.py [--quick]

Prints a table (method, d, seconds, |Δ|) and, as the last line, a JSON object for the largest d.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg

from gankit.metrics import frechet_distance

SAMPLES = 4096  # features per set: covariances are full rank up to d = 4096, like a 10k-image FID at d = 2048


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


def gaussian_stats(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of SAMPLES correlated features: Gaussian noise through a random (d, d) mixing matrix."""
    feats = rng.standard_normal((SAMPLES, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + rng.standard_normal(d)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def best_time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(fastest wall time of `repeats` calls, the value returned)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repeat per method instead of three")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    rng = np.random.default_rng(0)
    print(f"{'method':<8} {'d':>5} {'seconds':>9} {'|Δ|':>9}")
    for d in (512, 2048):
        stats = (*gaussian_stats(rng, d), *gaussian_stats(rng, d))
        gankit_s, gankit_value = best_time(lambda: frechet_distance(*stats), repeats)
        sqrtm_s, sqrtm_value = best_time(lambda: sqrtm_frechet_distance(*stats), repeats)
        summary = {
            "d": d,
            "fid": round(sqrtm_value, 6),
            "gankit_s": round(gankit_s, 4),
            "sqrtm_s": round(sqrtm_s, 4),
            "speedup": round(sqrtm_s / gankit_s, 1),
            "abs_diff": abs(gankit_value - sqrtm_value),
            "repeats": repeats,
        }
        print(f"{'gankit':<8} {d:>5} {gankit_s:>9.3f} {summary['abs_diff']:>9.2e}")
        print(f"{'sqrtm':<8} {d:>5} {sqrtm_s:>9.3f} {'(ref)':>9}")
    print(json.dumps(summary))  # the largest d, as the last line for scripts

if __name__ == "__main__":
    main()
