"""CycleGAN (Zhu et al. 2017): translation between two unpaired image domains, both ways.

Two generators, G_ab: A -> B and G_ba: B -> A (residual nets), and two PatchGAN discriminators, D_a and D_b, one per
domain. G's step minimises, for both directions, the adversarial loss (least squares in the paper: `loss.name`),
λ·cycle-consistency L1 (A -> B -> A returns to A, and B -> A -> B to B) and λ_id·identity L1 (G_ab leaves a B image
as it is, G_ba an A image), λ_id = `cyclegan.identity` · λ. D's step judges real images against generated ones drawn
from a pool of the last `cyclegan.pool` fakes (half of each batch swapped with older fakes), which damps oscillation.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..config import Config, Section
from ..data import PairBatch
from ..errors import UserError
from ..nets.translator import PatchDiscriminator, ResNetGenerator, UNetGenerator, patch_layers
from .base import DIRECTIONS, Context, Group, Phase, Request
from .paired import PairedGAN
from .registry import register_variant

FAKES = "fakes"  # Context key: the G step's (G_ba(b), G_ab(a)), detached, for the D step's pools


class CycleGANConfig(Section):
    """cyclegan's own keys."""

    cycle: float = Field(10.0, ge=0, description="λ of the cycle-consistency L1 terms (the paper's 10)")
    identity: float = Field(0.5, ge=0, description="identity L1 weight as a fraction of λ (the paper's 0.5)")
    cycle_noise: float = Field(0.0, ge=0, description="std of Gaussian noise added to each translation before it is "
                               "translated back (data units, [-1, 1]): a faint pattern hiding the input no longer "
                               "survives the round trip (against CycleGAN's steganography, Bashkirova et al. 2019)")
    pool: int = Field(50, ge=0, description="past fakes each D also sees (0: only the current batch)")
    generator: Literal["resnet", "unet"] = Field("resnet", description="each generator's net: the paper's residual "
                                                 "net, or pix2pix's U-Net (its skips carry the input's detail across)")
    width: int = Field(64, ge=4, description="channels of G's first layer and D's first layer")
    blocks: int = Field(6, ge=1, description="residual blocks per generator (the paper's 6 at 128 px, 9 at 256; "
                        "resnet only)")
    d_layers: int | None = Field(None, ge=1, le=6, description="each D's stride-2 layers (default: 70/256 of the side)")


class ImagePool(nn.Module):
    """The last `size` generated images (Shrivastava et al. 2017): each query returns, per image, either it or (with
    probability ½ once full) an older one it replaces. The images are buffers, so checkpoints keep them."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, batch: Tensor) -> Tensor:
        if self.size == 0:
            return batch
        out = batch.clone()
        for i in range(len(batch)):
            if self.filled < self.size:
                self.images[self.filled] = batch[i]
                self.filled += 1
            elif torch.rand(()) < 0.5:
                j = int(torch.randint(self.size, ()))
                out[i] = self.images[j].clone()
                self.images[j] = batch[i]
        return out


@register_variant("cyclegan")
class CycleGAN(PairedGAN):
    """G_ab, G_ba (one optimizer group, G) and D_a, D_b (group D); phases G then D; translates both ways."""

    Config = CycleGANConfig
    own_nets = "two ResNet Gs, two PatchGAN Ds"
    sampling = frozenset({"inputs", "direction"})
    generator_names = ("G_ab", "G_ba")
    needs_pairs = False

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        if self.shape != self.shape_b:
            raise UserError("cyclegan translates between domains of one image size", "use data.pair other than "
                            "downscale")
        o = self.options
        channels, resolution = self.shape[0], self.shape[-1]
        try:
            layers = o.d_layers or patch_layers(resolution)
            self.G_ab, self.G_ba = (ResNetGenerator(channels, resolution, o.width, o.blocks) if o.generator == "resnet"
                                    else UNetGenerator(channels, channels, resolution, o.width, dropout=0.0)
                                    for _ in range(2))
            self.D_a, self.D_b = (PatchDiscriminator(channels, resolution, o.width, layers, norm="instance")
                                  for _ in range(2))
        except ValueError as exc:
            raise UserError(str(exc), "set data.resolution to a power of two, e.g. 32, and cyclegan.d_layers to "
                            "at most log2(resolution) - 2") from None
        self.pool_a, self.pool_b = ImagePool(o.pool, self.shape), ImagePool(o.pool, self.shape)
        self.cycle, self.identity, self.cycle_noise = o.cycle, o.identity * o.cycle, o.cycle_noise
        self.phases = [Phase("G", "G"), Phase("D", "D", repeats=cfg.train.n_critic)]

    @property
    def groups(self) -> dict[str, Group]:
        betas = (self.optim_cfg.beta1, self.optim_cfg.beta2)
        return {"D": Group([self.D_a, self.D_b], self.optim_cfg.lr_d, betas),
                "G": Group([self.G_ab, self.G_ba], self.optim_cfg.lr_g, betas, ema=self.optim_cfg.ema is not None)}

    def loss(self, phase: str, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return self.g_loss(batch, ctx) if phase == "G" else self.d_loss(batch, ctx)

    def g_loss(self, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        a, b = batch.x, batch.b
        fake_b, fake_a = self.G_ab(a), self.G_ba(b)
        ctx.values[FAKES] = (fake_a.detach(), fake_b.detach())
        adversarial = self.game.g(self.D_b(fake_b).flatten()) + self.game.g(self.D_a(fake_a).flatten())
        cycle = F.l1_loss(self.G_ba(self.jitter(fake_b)), a) + F.l1_loss(self.G_ab(self.jitter(fake_a)), b)
        loss = adversarial + self.cycle * cycle
        scalars = {"g_adv": adversarial.detach(), "cycle": cycle.detach()}
        if self.identity:
            identity = F.l1_loss(self.G_ab(b), b) + F.l1_loss(self.G_ba(a), a)
            loss = loss + self.identity * identity
            scalars["identity"] = identity.detach()
        scalars[self.log_keys.g_loss] = loss.detach()
        return loss, scalars

    def jitter(self, x: Tensor) -> Tensor:
        """x plus the cycle noise (x itself when it is off)."""
        return x + self.cycle_noise * torch.randn_like(x) if self.cycle_noise else x

    def d_loss(self, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        if FAKES in ctx.values:
            fake_a, fake_b = ctx.values.pop(FAKES)
        else:  # no G step in this iteration: fresh fakes
            with torch.no_grad():
                fake_a, fake_b = self.G_ba(batch.b), self.G_ab(batch.x)
        fake_a, fake_b = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
        real_a, real_b = self.D_a(batch.x).flatten(), self.D_b(batch.b).flatten()
        fake_a_logits, fake_b_logits = self.D_a(fake_a).flatten(), self.D_b(fake_b).flatten()
        # halved, as in the paper: each D learns at half G's pace
        loss = 0.5 * (self.game.d(real_a, fake_a_logits) + self.game.d(real_b, fake_b_logits))
        keys = self.log_keys
        return loss, {keys.d_loss: loss.detach(), keys.d_real: self.game.mean_output(torch.cat([real_a, real_b])),
                      keys.d_fake: self.game.mean_output(torch.cat([fake_a_logits, fake_b_logits]))}

    # ------------------------------------------------------------------------------------------- sampling

    def condition(self, request: Request) -> Tensor:
        if request.direction not in (None, *DIRECTIONS):
            raise ValueError(f"unknown direction {request.direction!r}: use {' or '.join(DIRECTIONS)}")
        return self.check_inputs(request)

    def run_generator(self, request: Request) -> Tensor:
        return (self.G_ba if request.direction == "b2a" else self.G_ab)(request.cond)
