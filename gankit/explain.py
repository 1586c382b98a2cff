"""What a trained GAN looks at and what its latent directions do.

- Saliency of D: which pixels move D's realness logit, for real and generated images: gradient × input, and
  integrated gradients (Sundararajan et al. 2017: the gradient averaged along the straight path from a black
  baseline to the image, times the difference), which sums to the logit's change from baseline to image.
- Direction effects: for each latent direction (SeFa's, and the attribute directions of gankit.edit), how often moving
  a sample along it changes what the data's evaluator sees (shape, colour, digit): "sefa0 changes colour for 92 % of
  samples".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .edit import Directions, edit
from .metrics import Evaluator
from .train import Generator
from .train.pretrained import run_variant
from .variants import Variant

IG_STEPS = 32  # points on the path from the baseline for integrated gradients
EFFECT_SAMPLES = 200
EFFECT_AMOUNT = 3.0


def critic(run_dir: Path) -> Variant | None:
    """The run's variant with its D (newest checkpoint) when D scores images (with their classes, for a conditional
    D), else None."""
    found = run_variant(run_dir)
    if found is None:
        return None
    variant, shape = found
    probe = torch.zeros(2, *shape)
    try:
        variant.score(probe, torch.zeros(2, dtype=torch.long) if variant.class_names else None)
    except (ValueError, TypeError):
        return None
    return variant


def _logit_grad(variant: Variant, x: Tensor, labels: Tensor | None) -> Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(variant.score(x, labels).sum(), x)
    return grad


def saliency(variant: Variant, x: Tensor, labels: Tensor | None = None,
             steps: int = IG_STEPS) -> tuple[Tensor, Tensor]:
    """(gradient × input, integrated gradients from a black image), each (N, H, W): absolute values summed over
    channels, for D's realness logit of images x in [-1, 1] (of their classes `labels`, for a conditional D)."""
    x = x.to(variant.device)
    labels = None if labels is None else labels.to(variant.device)
    grad_input = (_logit_grad(variant, x, labels) * x).abs().sum(1)
    baseline = torch.full_like(x, -1.0)
    total = torch.zeros_like(x)
    for alpha in torch.arange(1, steps + 1) / steps:
        total += _logit_grad(variant, baseline + alpha * (x - baseline), labels)
    integrated = ((x - baseline) * total / steps).abs().sum(1)
    return grad_input.detach().cpu(), integrated.detach().cpu()


def heat(maps: Tensor) -> Tensor:
    """Maps (N, H, W) -> RGB images (N, 3, H, W) in [-1, 1]: each map scaled to its own maximum, black → red →
    yellow → white."""
    v = maps / maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    rgb = torch.stack([(3 * v).clamp(0, 1), (3 * v - 1).clamp(0, 1), (3 * v - 2).clamp(0, 1)], dim=1)
    return rgb * 2 - 1


def direction_effects(gen: Generator, evaluator: Evaluator, found: Directions, n: int = EFFECT_SAMPLES,
                      amount: float = EFFECT_AMOUNT, seed: int = 0) -> dict[str, dict[str, float]]:
    """For each direction, the share of n samples whose evaluator reading of each attribute changes when the sample
    moves `amount` along it (the raw direction, nothing held)."""
    z = gen.latents(n, seed)
    labels = torch.randint(len(gen.class_names), (n,), generator=torch.Generator().manual_seed(seed)) \
        if gen.class_names else None
    x = gen.generate(z, labels=labels)
    before = {a: evaluator.classify(x, a) for a in evaluator.attributes}
    effects = {}
    for name in found.items:
        moved = gen.generate(edit(z, found, {name: amount}, hold=False), labels=labels)
        effects[name] = {a: float((evaluator.classify(moved, a) != before[a]).float().mean())
                         for a in evaluator.attributes}
    return effects


def describe(effects: dict[str, dict[str, float]]) -> dict[str, str]:
    """One line per direction: what it changes most, e.g. "changes color for 92 % of samples (shape 10 %)"."""
    lines = {}
    for name, shares in effects.items():
        ranked = sorted(shares.items(), key=lambda kv: -kv[1])
        top, rest = ranked[0], ranked[1:]
        extra = f" ({', '.join(f'{a} {v:.0%}' for a, v in rest)})" if rest else ""
        lines[name] = f"changes {top[0]} for {top[1]:.0%} of samples{extra}"
    return lines


def protocol() -> dict[str, Any]:
    return {"saliency": f"|gradient × input| and |integrated gradients| ({IG_STEPS} steps from a black image) of D's "
                        "logit, summed over channels, each map scaled to its maximum",
            "effects": f"{EFFECT_SAMPLES} samples moved {EFFECT_AMOUNT} along each direction (nothing held); the "
                       "share whose evaluator reading changes, per attribute"}
