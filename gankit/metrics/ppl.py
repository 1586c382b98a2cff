"""Perceptual path length (Karras et al. 2019): how much a generator's output changes, as a feature extractor sees
it, for a tiny step along a path in its latent space. Smooth latent spaces give short paths.

PPL = E[ d(G(p(t)), G(p(t + ε))) / ε² ] with t ~ U(0, 1), p a slerp between two Gaussian latents z (or a lerp
between their w), d the squared L2 distance of features, and the mean taken over the 1st-99th percentile of the
values as in the paper. The paper's d is LPIPS on VGG16; gankit uses the evaluator's features, so values are
comparable between models measured with the same evaluator only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

EPSILON = 1e-4
SPACES = ("z", "w")


def slerp(a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation between latent batches a and b (N, D) at t ∈ [0, 1] (a number, or (N, 1) per row):
    stays on the shell where Gaussian noise lives, unlike a straight line through the low-norm middle (White 2016)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


@torch.no_grad()
def perceptual_path_length(generate: Callable[[Tensor], Tensor], features: Callable[[Tensor], Tensor], a: Tensor,
                           b: Tensor, t: Tensor, space: str = "z", epsilon: float = EPSILON,
                           batch_size: int = 256) -> tuple[float, Tensor]:
    """(PPL, the per-path values) for paths from latents a to b (N, D) at positions t (N,): slerp for `space` "z",
    lerp for "w". `generate` maps a batch of latents to samples; it must give the same conditions (labels, codes)
    to the two ends of each step, so call it with a fixed seed."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    values = []
    for rows in torch.arange(len(a)).split(batch_size):
        ta = t[rows, None]
        path = (lambda s: slerp(a[rows], b[rows], s)) if space == "z" else (lambda s: torch.lerp(a[rows], b[rows], s))
        f0, f1 = features(generate(path(ta))), features(generate(path(ta + epsilon)))
        values.append((f0 - f1).double().square().sum(1) / epsilon**2)
    values = torch.cat(values)
    low, high = torch.quantile(values, torch.tensor([0.01, 0.99], dtype=values.dtype))
    kept = values[(values >= low) & (values <= high)]
    return float(kept.mean()), values
