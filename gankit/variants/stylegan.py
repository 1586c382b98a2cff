"""StyleGAN-lite (Karras et al. 2019, 2020): a mapping net and a style-modulated synthesis net against PGGAN's D,
on the GAN variant's game (non-saturating logistic with lazy R1 in the presets).

Added to the GAN game: style-mixing regularisation (two latents, a random crossover layer), optional path-length
regularisation as its own lazy G phase, and truncation toward the mean w (ψ, the `--truncation` flag). Sampling
can swap coarse, middle or fine styles between two latents (`mix`, `gankit sample --mix`).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor

from ..config import Config, Section
from ..data import Batch
from ..nets.progressive import ProgressiveDiscriminator, square_image
from ..nets.style import STYLE_PARTS, StyleGenerator
from .base import Context, Phase, Request
from .gan import GAN
from .registry import register_variant


class StyleGANConfig(Section):
    """stylegan's own keys: mapping net, style mixing and path-length regularisation."""

    w_dim: int = Field(128, ge=1, description="width of the intermediate latent w")
    mapping_depth: int = Field(8, ge=1, description="dense layers of the mapping net z -> w")
    mapping_lr_mul: float = Field(0.01, gt=0, le=1, description="learning-rate multiplier of the mapping net")
    mixing: float = Field(0.9, ge=0, le=1, description="probability that a training batch mixes two latents' styles")
    w_avg_beta: float = Field(0.995, gt=0, lt=1, description="decay of the running mean of w (truncation's centre)")
    pl_weight: float = Field(0.0, ge=0, description="path-length regularisation weight (StyleGAN2's 2; 0: off)")
    pl_every: int = Field(4, ge=1, description="lazy path-length regularisation: every N steps, scaled by N")
    pl_decay: float = Field(0.01, gt=0, lt=1, description="rate at which the path-length target follows the mean")


@register_variant("stylegan")
class StyleGAN(GAN):
    """G = mapping + synthesis with per-layer styles and noise; D = PGGAN's D, fully grown."""

    Config = StyleGANConfig
    packs = False
    own_nets = "style-based G, PGGAN's D"
    sampling = frozenset({"truncation", "mixing"})
    w_space = True

    def __init__(self, cfg: Config, spec: dict) -> None:
        o = self.read_options(cfg)
        channels, side = square_image(spec, "stylegan")
        G = StyleGenerator(cfg.model.z_dim, o.w_dim, channels, side, cfg.model.width, o.mapping_depth,
                           o.mapping_lr_mul, o.w_avg_beta)
        D = ProgressiveDiscriminator(channels, side, cfg.model.width, cfg.model.minibatch_std)
        super().__init__(cfg, spec, G=G, D=D)
        self.register_buffer("pl_mean", torch.zeros(()))
        if o.pl_weight:
            self.phases.append(Phase("G_reg", "G", every=o.pl_every))

    def noise(self, n: int, *, truncation: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Untruncated z: StyleGAN truncates in w (see run_generator)."""
        return super().noise(n, generator=generator)

    def mixed_styles(self, z: Tensor) -> Tensor:
        """ws for training: with probability `mixing` a second latent's styles from a random layer on."""
        ws = self.G.styles(z)
        if self.options.mixing and torch.rand(()) < self.options.mixing:
            cut = int(torch.randint(1, self.G.num_ws, ()))
            ws = torch.cat([ws[:, :cut], self.G.styles(torch.randn_like(z))[:, cut:]], dim=1)
        return ws

    def g_forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.G.synthesis(self.mixed_styles(z)) if self.G.training else self.G(z)

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        if phase == "G_reg":
            return self.path_length_loss(batch)
        return super().loss(phase, batch, ctx)

    def path_length_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """(‖J_wᵀ y‖ − a)² for image-space noise y, a the running mean of the lengths (StyleGAN2), on half a batch,
        times pl_every so lazy and every-step runs match in scale."""
        o = self.options
        ws = self.G.styles(self.noise(max(1, len(batch) // 2)))
        images = self.G.synthesis(ws)
        y = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        with torch.no_grad():
            self.pl_mean.lerp_(lengths.mean(), o.pl_decay)
        penalty = (lengths - self.pl_mean).square().mean()
        return penalty * o.pl_weight * o.pl_every, {"path_length": lengths.mean().detach(),
                                                    "pl_penalty": penalty.detach()}

    def run_generator(self, request: Request) -> Tensor:
        """Images for z with truncation ψ toward the mean w, clamped to [-1, 1]."""
        return self.G(request.z, request.truncation).clamp(-1, 1)

    # ------------------------------------------------------------------------------------------- w space

    def to_w(self, z: Tensor) -> Tensor:
        """w (N, w_dim) for latents z."""
        return self.G.mapping(z)

    def from_w(self, w: Tensor) -> Tensor:
        """Images for w (N, w_dim), every layer given the same w."""
        return self.G.synthesis(w[:, None].expand(-1, self.G.num_ws, -1))

    def mix(self, z_a: Tensor, z_b: Tensor, part: str, truncation: float = 1.0) -> Tensor:
        """Images of z_a whose `part` styles (coarse, middle or fine) come from z_b."""
        if part not in STYLE_PARTS:
            raise ValueError(f"unknown style part {part!r}: choose one of {', '.join(STYLE_PARTS)}")
        ws = self.G.styles(z_a, truncation).clone()
        layers = self.G.parts[part]
        ws[:, layers] = self.G.styles(z_b, truncation)[:, layers]
        return self.G.synthesis(ws).clamp(-1, 1)
