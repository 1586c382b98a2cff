"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN plus an L1 term.

G is a U-Net from A to B; D is a PatchGAN that judges (A, B) pairs stacked on channels, one logit per patch, so it
polices local texture and colour while the L1 term (λ = 100, the paper's) ties the output to the true B at low
frequencies. D's loss is halved, as in the paper, so D learns more slowly than G. No noise z: the paper found G
ignores it, so the translation is a function of the input (dropout acts in training only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ..config import Config, Section
from ..data import PairBatch
from ..errors import UserError
from ..nets.translator import PatchDiscriminator, UNetGenerator, patch_layers
from .base import Context
from .paired import PairedGAN
from .registry import register_variant



class Pix2PixConfig(Section):
    """pix2pix's own keys."""

    l1_weight: float = Field(100.0, ge=0, description="λ of the L1 distance between G(A) and the true B")
    width: int = Field(64, ge=4, description="channels of G's and D's first level (doubling to 8× going down)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout in G's innermost decoder levels (training only)")
    d_layers: int | None = Field(None, ge=1, le=6, description="D's stride-2 layers (receptive field 16, 34, 70 px "
                                 "for 1, 2, 3); default: the paper's 70/256 of the image, at least 1")


@register_variant("pix2pix")
class Pix2Pix(PairedGAN):
    """G: A -> B (U-Net); D(A, B) on patches; G minimises the adversarial loss plus λ·L1(G(A), B)."""

    Config = Pix2PixConfig
    own_nets = "U-Net G, PatchGAN D"

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        o = self.options
        channels, resolution = self.shape[0], self.shape[-1]
        try:
            self.G = UNetGenerator(channels, channels, resolution, o.width, o.dropout)
            self.D = PatchDiscriminator(2 * channels, resolution, o.width, o.d_layers or patch_layers(resolution))
        except ValueError as exc:
            raise UserError(str(exc), "set data.resolution to a power of two, e.g. 32, and pix2pix.d_layers to at "
                            "most log2(resolution) - 2") from None
        self.l1_weight = o.l1_weight

    def critic(self, a: Tensor, b: Tensor) -> Tensor:
        """D's patch logits for B images `b` given their inputs `a`, flattened: (N·h·w,)."""
        return self.D(torch.cat([a, b], dim=1)).flatten()

    def loss(self, phase: str, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return self.d_loss(batch, ctx) if phase == "D" else self.g_loss(batch, ctx)

    def d_loss(self, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        fake = self.d_step_fakes(batch, ctx)
        real_logits, fake_logits = self.critic(batch.x, batch.b), self.critic(batch.x, fake.detach())
        loss = 0.5 * self.game.d(real_logits, fake_logits)  # halved: the paper slows D relative to G
        keys = self.log_keys
        return loss, {keys.d_loss: loss.detach(), keys.d_real: self.game.mean_output(real_logits),
                      keys.d_fake: self.game.mean_output(fake_logits)}

    def g_loss(self, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        batch, fake = self.g_step_fakes(batch, ctx)
        adversarial = self.game.g(self.critic(batch.x, fake))
        l1 = F.l1_loss(fake, batch.b)
        loss = adversarial + self.l1_weight * l1
        return loss, {self.log_keys.g_loss: loss.detach(), "g_adv": adversarial.detach(), "l1": l1.detach()}
