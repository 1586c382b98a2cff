"""PGGAN (Karras et al. 2018): the GAN game on nets that grow from 4×4 to the data's side while training.

The growth schedule is phases on the seam: each resolution has a fade-in window (alpha 0 -> 1, except the first)
and a stabilise window, measured in images shown; the D and G phases are repeated per window with its start/stop.
The stage is a function of the step, kept in the nets' buffers, so a run resumed mid-fade continues bit-for-bit.
Real images are shown at the stage's side, blended during a fade exactly as G's output is. The game, penalties
(WGAN-GP, drift) and EMA are the GAN variant's, chosen by the preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ..config import Config, Section
from ..data import Batch
from ..errors import UserError
from ..nets.progressive import ProgressiveDiscriminator, ProgressiveGenerator, resolutions, square_image
from .base import STABILISERS, Context, Request
from .gan import GAN
from .registry import register_variant


class PGGANConfig(Section):
    """pggan's own keys: the growth schedule and PGGAN's normalisations."""

    start_resolution: int = Field(4, ge=4, description="side the nets start at (a power of two up to the data's)")
    fade_images: int = Field(6000, ge=0, description="images shown while each new resolution fades in (alpha 0 -> 1)")
    stable_images: int = Field(6000, ge=1, description="images shown at each resolution after its fade, before the "
                               "next one starts (the last resolution trains to the end)")
    pixel_norm: bool = Field(True, description="pixel-wise feature normalisation in G")
    equalized_lr: bool = Field(True, description="equalised learning rate: weights scaled at run time by He's constant")


@dataclass(frozen=True)
class Window:
    """Steps [start, stop) at one level; a fade window raises alpha from 0 to 1 across it."""

    level: int
    fade: bool
    start: int
    stop: int | None


def schedule(sides: list[int], start_side: int, fade: int, stable: int) -> list[Window]:
    """The growth windows in steps: stabilise at the start side, then fade + stabilise for every larger side."""
    first = sides.index(start_side)
    windows, at = [Window(first, False, 0, stable)], stable
    for level in range(first + 1, len(sides)):
        if fade:
            windows.append(Window(level, True, at, at + fade))
            at += fade
        windows.append(Window(level, False, at, at + stable))
        at += stable
    return [*windows[:-1], replace(windows[-1], stop=None)]


@register_variant("pggan")
class PGGAN(GAN):
    """G and D grow 4 -> 8 -> ... -> R; `pggan.*` sets the schedule, `loss.*` the game (PGGAN's: WGAN-GP + drift)."""

    Config = PGGANConfig
    packs = False
    own_nets = "progressive G and D"
    stabilisers = frozenset(STABILISERS) - {"loss.contrastive"}  # D's features change as it grows

    def __init__(self, cfg: Config, spec: dict) -> None:
        self.refuse_unapplied(cfg)
        o = self.read_options(cfg)
        channels, side = square_image(spec, "pggan")
        sides = resolutions(side)
        if o.start_resolution not in sides:
            raise UserError(f"pggan.start_resolution={o.start_resolution} is not one of {sides}",
                            "use a power of two up to data.resolution")
        G = ProgressiveGenerator(cfg.model.z_dim, channels, side, cfg.model.width, o.pixel_norm, o.equalized_lr)
        D = ProgressiveDiscriminator(channels, side, cfg.model.width, cfg.model.minibatch_std, o.equalized_lr)
        super().__init__(cfg, spec, G=G, D=D)
        per_step = cfg.train.batch_size
        self.windows = schedule(sides, o.start_resolution, math.ceil(o.fade_images / per_step),
                                math.ceil(o.stable_images / per_step))
        self.phases = [replace(p, start=w.start, stop=w.stop) for w in self.windows for p in self.phases]
        self.enter_stage(0)

    def stage_at(self, step: int) -> tuple[int, float]:
        """(level, alpha) at a step."""
        w = next(w for w in reversed(self.windows) if w.start <= step)
        return w.level, (step - w.start) / (w.stop - w.start) if w.fade else 1.0

    def enter_stage(self, step: int) -> None:
        level, alpha = self.stage_at(step)
        self.G.set_stage(level, alpha)
        self.D.set_stage(level, alpha)

    def staged_real(self, x: Tensor) -> Tensor:
        """Real images at the stage's side; during a fade, the same blend of the side below that G's output is."""
        level, alpha, size = int(self.G.level), float(self.G.alpha), self.G.size
        x = F.avg_pool2d(x, x.shape[-1] // size) if x.shape[-1] != size else x
        if level > 0 and alpha < 1:
            x = torch.lerp(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"), x, alpha)
        return x

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        self.enter_stage(ctx.step)
        loss, scalars = super().loss(phase, replace(batch, x=self.staged_real(batch.x)), ctx)
        scalars["resolution"] = torch.tensor(float(self.G.size))
        scalars["alpha"] = self.G.alpha.clone()
        return loss, scalars

    def g_forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.G.native(z)

    def run_generator(self, request: Request) -> Tensor:
        """Samples at the data's side (the stage's images upsampled while still growing), clamped to [-1, 1]."""
        return self.G(request.z).clamp(-1, 1)
