"""Progressive growing (Karras et al. 2018): a G/D pair for 4×4 up to R×R whose depth is set by `level` and `alpha`.

Every resolution's layers exist from the start; `set_stage(level, alpha)` picks how many are used. While a level
fades in (alpha < 1) G blends the upsampled image of the level below with the new one, and D blends the new
fromRGB path with the old one on a downsampled input, so a new layer enters as a small residual. The stage lives in
buffers, so checkpoints, rollbacks and exports carry it; a freshly built pair is fully grown.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from .blocks import EqualConv2d, EqualLinear, MinibatchStd, PixelNorm

LRELU = 0.2


def resolutions(resolution: int) -> list[int]:
    """4, 8, ..., resolution (a power of two in [8, 256])."""
    levels = int(math.log2(resolution)) - 2
    if resolution != 4 * 2**levels or levels < 1 or resolution > 256:
        raise ValueError(f"progressive nets need a power-of-two resolution in [8, 256], got {resolution}")
    return [4 * 2**i for i in range(levels + 1)]


def square_image(spec: dict, variant: str) -> tuple[int, int]:
    """(channels, side) of the data for a variant whose nets need square images of a power-of-two side."""
    if spec["kind"] != "image":
        raise UserError(f"variant {variant} generates images; the data is {spec['kind']}", "use image data")
    channels, height, width = spec["shape"]
    if height != width:
        raise UserError(f"variant {variant} needs square images, the data is {height}×{width}", "set data.resolution")
    try:
        resolutions(height)
    except ValueError as exc:
        raise UserError(str(exc), "set data.resolution to a power of two (8-256)") from None
    return channels, height


def channels_at(r: int, resolution: int, width: int) -> int:
    """Feature maps at side r: `width` at the full resolution, doubling per halving, at most 4·width."""
    return min(4 * width, width * resolution // r)


class Staged(nn.Module):
    """The growth stage as buffers: `level` (index into `resolutions`) and `alpha` (fade-in of that level)."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.resolutions = resolutions(resolution)
        self.register_buffer("level", torch.tensor(len(self.resolutions) - 1))
        self.register_buffer("alpha", torch.tensor(1.0))

    def set_stage(self, level: int, alpha: float) -> None:
        self.level.fill_(level)
        self.alpha.fill_(alpha)

    @property
    def size(self) -> int:
        """Side of the images at the current stage."""
        return self.resolutions[int(self.level)]


def _conv(in_ch: int, out_ch: int, pixel_norm: bool, equalized: bool) -> list[nn.Module]:
    return [EqualConv2d(in_ch, out_ch, 3, equalized=equalized), nn.LeakyReLU(LRELU),
            PixelNorm() if pixel_norm else nn.Identity()]


class ProgressiveGenerator(Staged):
    """z (N, z_dim) -> images; `native(z)` at the current stage's side, `forward(z)` upsampled to the full side."""

    def __init__(self, z_dim: int, channels: int, resolution: int, width: int = 32, pixel_norm: bool = True,
                 equalized: bool = True) -> None:
        super().__init__(resolution)
        self.z_dim, self.resolution = z_dim, resolution
        ch = [channels_at(r, resolution, width) for r in self.resolutions]
        norm = PixelNorm() if pixel_norm else nn.Identity()
        # PGGAN's first layer is a dense 4×4 "deconvolution" with gain √2/4 on the normalised latent
        self.input = nn.Sequential(norm, EqualLinear(z_dim, ch[0] * 16, gain=2**0.5 / 4, equalized=equalized))
        self.base = nn.Sequential(nn.LeakyReLU(LRELU), norm, *_conv(ch[0], ch[0], pixel_norm, equalized))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *_conv(ch[i - 1], ch[i], pixel_norm, equalized),
                          *_conv(ch[i], ch[i], pixel_norm, equalized))
            for i in range(1, len(ch)))
        self.to_rgb = nn.ModuleList(EqualConv2d(c, channels, 1, gain=1.0, equalized=equalized) for c in ch)

    def native(self, z: Tensor) -> Tensor:
        """Images (N, C, s, s) at the current stage's side s; linear output (clamp when sampling)."""
        level, alpha = int(self.level), float(self.alpha)
        h = self.base(self.input(z).reshape(z.shape[0], -1, 4, 4))  # not len(z): an export traces the batch size
        for block in self.blocks[: max(level - 1, 0)]:
            h = block(h)
        if level == 0:
            return self.to_rgb[0](h)
        out = self.to_rgb[level](self.blocks[level - 1](h))
        if alpha < 1:
            out = torch.lerp(F.interpolate(self.to_rgb[level - 1](h), scale_factor=2, mode="nearest"), out, alpha)
        return out

    def forward(self, z: Tensor) -> Tensor:
        x = self.native(z)
        return F.interpolate(x, size=self.resolution, mode="nearest") if x.shape[-1] != self.resolution else x


class ProgressiveDiscriminator(Staged):
    """images (N, C, s, s) with s ≥ the stage's side (larger ones are average-pooled down) -> logits (N,).

    Fully grown it is PGGAN's D: fromRGB, two 3×3 convs and a 2× average pool per level, minibatch std, a 3×3 conv
    and two dense layers at 4×4 — also StyleGAN-lite's D.
    """

    def __init__(self, channels: int, resolution: int, width: int = 32, minibatch_std: bool = True,
                 equalized: bool = True) -> None:
        super().__init__(resolution)
        ch = [channels_at(r, resolution, width) for r in self.resolutions]
        self.from_rgb = nn.ModuleList(nn.Sequential(EqualConv2d(channels, c, 1, equalized=equalized),
                                                    nn.LeakyReLU(LRELU)) for c in ch)
        self.blocks = nn.ModuleList(
            nn.Sequential(EqualConv2d(ch[i], ch[i], 3, equalized=equalized), nn.LeakyReLU(LRELU),
                          EqualConv2d(ch[i], ch[i - 1], 3, equalized=equalized), nn.LeakyReLU(LRELU),
                          nn.AvgPool2d(2))
            for i in range(1, len(ch)))
        self.mbstd = MinibatchStd() if minibatch_std else nn.Identity()
        self.head = nn.Sequential(EqualConv2d(ch[0] + int(minibatch_std), ch[0], 3, equalized=equalized),
                                  nn.LeakyReLU(LRELU), nn.Flatten(),
                                  EqualLinear(ch[0] * 16, ch[0], gain=2**0.5, equalized=equalized),
                                  nn.LeakyReLU(LRELU), EqualLinear(ch[0], 1, equalized=equalized))

    def features(self, x: Tensor) -> Tensor:
        """(N, ch, 4, 4) features of x after the stage's levels."""
        level, alpha = int(self.level), float(self.alpha)
        if x.shape[-1] != self.resolutions[level]:
            x = F.avg_pool2d(x, x.shape[-1] // self.resolutions[level])
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level - 1](h)
            if alpha < 1:
                h = torch.lerp(self.from_rgb[level - 1](F.avg_pool2d(x, 2)), h, alpha)
        for block in reversed(self.blocks[: max(level - 1, 0)]):
            h = block(h)
        return h

    def logits_from(self, h: Tensor) -> Tensor:
        return self.head(self.mbstd(h)).flatten()

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_from(self.features(x))
