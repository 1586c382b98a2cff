"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each sample gets a ball reaching its k-th nearest neighbour in its own set (the sample itself excluded). For
precision/recall a sample at exactly the radius is inside (distance ≤ radius, as Kynkäänniemi et al.'s code, NVlabs'
and torch-fidelity); density/coverage keep Naeem et al.'s strict < from their reference code. Distances are computed
in row blocks, so 10,000 × 10,000 samples of 2048 features never need the full 10,000² distance matrix.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from gankit.errors import UserError
from gankit.metrics.stats import Features, as_feature_pair

CHUNK_ROWS = 1024  # a block is CHUNK_ROWS × N float32 distances: 40 MB for N = 10,000


def precision_recall(real: Features, fake: Features, k: int = 3) -> tuple[float, float]:
    """Precision: share of fake samples inside (≤ radius) some real sample's k-NN ball; recall: share of real samples
    inside a fake ball."""
    real_t, fake_t = _prepare(real, fake, k)
    real_radii_sq, fake_radii_sq = _knn_radii_sq(real_t, k), _knn_radii_sq(fake_t, k)
    fake_in_real = torch.zeros(len(fake_t), dtype=torch.bool)
    real_in_fake = torch.empty(len(real_t), dtype=torch.bool)
    for rows, dist_sq in _distance_blocks(real_t, fake_t):  # dist_sq: (block of real, all fake)
        fake_in_real |= (dist_sq <= real_radii_sq[rows, None]).any(dim=0)
        real_in_fake[rows] = (dist_sq <= fake_radii_sq[None, :]).any(dim=1)
    return fake_in_real.double().mean().item(), real_in_fake.double().mean().item()


def density_coverage(real: Features, fake: Features, k: int = 5) -> tuple[float, float]:
    """Density: real k-NN balls containing each fake sample, over k (≈ 1 when fake ~ real); coverage: share of real
    balls holding at least one fake sample. Unlike precision/recall, real outliers do not inflate them."""
    real_t, fake_t = _prepare(real, fake, k)
    real_radii_sq = _knn_radii_sq(real_t, k)
    balls_containing_fake = torch.zeros(len(fake_t), dtype=torch.int64)
    real_covered = torch.empty(len(real_t), dtype=torch.bool)
    for rows, dist_sq in _distance_blocks(real_t, fake_t):
        inside = dist_sq < real_radii_sq[rows, None]  # (block of real, all fake): fake j inside real ball i
        balls_containing_fake += inside.sum(dim=0)
        real_covered[rows] = inside.any(dim=1)  # same as: nearest fake closer than the radius
    density = balls_containing_fake.sum().item() / (k * len(fake_t))
    return density, real_covered.double().mean().item()


def _prepare(real: Features, fake: Features, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate both sets and return them as float32 tensors centred on the real mean."""
    real_np, fake_np = as_feature_pair(real, fake, "real samples", "fake samples")
    if k < 1 or min(len(real_np), len(fake_np)) <= k:
        raise UserError(
            f"k={k} nearest neighbours needs k >= 1 and more than k samples per set; "
            f"got {len(real_np)} real and {len(fake_np)} fake",
            hint="pass more samples or a smaller k",
        )
    # Distances are translation invariant; centring keeps ||a||² + ||b||² − 2a·b from cancelling in float32. Integer
    # features are centred on an integer vector: they stay integers, so equal distances stay exactly equal (a tie
    # with the radius counts as inside) instead of falling either side by round-off.
    center = real_np.mean(axis=0)
    if _integral(real_np) and _integral(fake_np):
        center = np.round(center)
    return torch.from_numpy(real_np - center).float(), torch.from_numpy(fake_np - center).float()


def _integral(x: np.ndarray) -> bool:
    """Every value a whole number (counts, pixel levels), so distances can be computed exactly."""
    # The first row settles it for float features without a full-size temporary.
    return bool((x[:1] == np.round(x[:1])).all() and (x == np.round(x)).all())


def _distance_blocks(a: torch.Tensor, b: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield (rows, squared distances (len(rows), len(b))) for successive row blocks of a."""
    b_sq = (b * b).sum(dim=1)
    for start in range(0, len(a), CHUNK_ROWS):
        block = a[start : start + CHUNK_ROWS]
        # ||a − b||² = ||a||² + ||b||² − 2 a·b; squared distances suffice since only comparisons are made.
        dist_sq = torch.addmm(b_sq[None, :], block, b.T, alpha=-2.0)
        dist_sq.add_((block * block).sum(dim=1, keepdim=True)).clamp_(min=0.0)
        yield slice(start, start + len(block)), dist_sq


def _knn_radii_sq(x: torch.Tensor, k: int) -> torch.Tensor:
    """Squared distance from each row of x to its k-th nearest other row, shape (N,)."""
    radii_sq = torch.empty(len(x))
    for rows, dist_sq in _distance_blocks(x, x):
        block_rows = torch.arange(rows.start, rows.stop)
        dist_sq[block_rows - rows.start, block_rows] = float("inf")  # a sample is not its own neighbour
        radii_sq[rows] = dist_sq.topk(k, dim=1, largest=False).values[:, -1]
    return radii_sq
