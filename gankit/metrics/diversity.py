"""A cheap per-batch diversity signal for training logs: how spread out generated samples are versus real ones."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def mean_pairwise_distance(x: Tensor, max_samples: int = 32) -> Tensor:
    """Mean L2 distance between distinct pairs of the first `max_samples` rows of x (flattened). -> scalar tensor"""
    x = x[:max_samples].detach().flatten(1).float()
    n = x.shape[0]
    if n < 2:
        return torch.zeros((), device=x.device)
    return torch.cdist(x, x).sum() / (n * (n - 1))


def diversity_ratio(fake: Tensor, real: Tensor) -> Tensor:
    """Mean pairwise distance of fakes over that of reals: ≈ 1 when G is as varied as the data, → 0 under collapse."""
    return mean_pairwise_distance(fake) / mean_pairwise_distance(real).clamp_min(1e-12)
