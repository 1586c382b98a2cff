"""Image-to-image nets: pix2pix's U-Net generator and PatchGAN discriminator (Isola et al. 2017), and CycleGAN's
residual generator (Zhu et al. 2017, after Johnson et al. 2016); any square power-of-two resolution."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .blocks import dcgan_init

MAX_MULT = 8  # channel multiplier cap: width·8 from the fourth level down, as in the paper's 512 at width 64
PAPER_PATCH = 70 / 256  # the paper's PatchGAN sees 70×70 pixels of a 256×256 image


def _depth(resolution: int) -> int:
    depth = int(math.log2(resolution)) if resolution > 1 else 0
    if 2**depth != resolution or depth < 2:
        raise ValueError(f"image-to-image nets need a power-of-two resolution of at least 4, got {resolution}")
    return depth


class UNetGenerator(nn.Module):
    """Images (N, C_in, R, R) -> images (N, C_out, R, R) in [-1, 1]: stride-2 convs down to 1×1, transposed convs
    back up, each level's encoder output concatenated to the decoder's (the skips carry the input's layout across).

    Dropout (`dropout` > 0) sits in the innermost decoder levels (at most three) and is active in training only, so
    a trained translator is deterministic; the paper's test-time dropout is not used.
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, width: int = 64,
                 dropout: float = 0.5) -> None:
        super().__init__()
        depth = _depth(resolution)
        ch = [width * min(2**i, MAX_MULT) for i in range(depth)]  # encoder output channels per level
        self.down = nn.ModuleList([nn.Conv2d(in_channels, ch[0], 4, 2, 1)])
        for i in range(1, depth):
            norm = [] if i == depth - 1 else [nn.BatchNorm2d(ch[i])]  # 1×1 at the bottom: nothing to normalise over
            self.down.append(nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1), *norm))
        self.up = nn.ModuleList()  # up[i] takes level i's features (with its skip) to level i-1's resolution
        for i in range(depth):
            c_in = ch[i] if i == depth - 1 else 2 * ch[i]
            if i == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
                continue
            drop = [nn.Dropout(dropout)] if dropout and i >= max(1, depth - 3) else []
            self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, ch[i - 1], 4, 2, 1),
                                         nn.BatchNorm2d(ch[i - 1]), *drop))
        dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        h = skips.pop()
        for i in reversed(range(len(self.up))):
            h = self.up[i](h)
            if i:
                h = torch.cat([h, skips[i - 1]], dim=1)
        return h


def patch_layers(resolution: int) -> int:
    """Stride-2 layers of a PatchGAN whose receptive field is the paper's 70/256 of the image (at least one)."""
    return max(1, _depth(resolution) - 5)


def receptive_field(layers: int) -> int:
    """Pixels one output of `PatchDiscriminator(..., layers)` sees: 16, 34, 70, ... for 1, 2, 3, ..."""
    field = 4  # the output conv (4×4, stride 1)
    field += 3  # the stride-1 conv before it
    for _ in range(layers):
        field = 2 * field + 2  # a 4×4 stride-2 conv
    return field


def _norm(kind: str, channels: int) -> nn.Module:
    """Batch norm (pix2pix) or instance norm without affine parameters or running statistics (CycleGAN)."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels)


class PatchDiscriminator(nn.Module):
    """(N, C, R, R) -> logits (N, 1, h, w), one per overlapping patch of `receptive_field(layers)` pixels:
    `layers` stride-2 convs, one stride-1 conv, then a 1-channel conv; `norm` (batch or instance) after all but the
    first."""

    def __init__(self, in_channels: int, resolution: int, width: int = 64, layers: int | None = None,
                 norm: str = "batch") -> None:
        super().__init__()
        layers = patch_layers(resolution) if layers is None else layers
        if resolution >> layers < 4:
            raise ValueError(f"a PatchGAN with {layers} stride-2 layers needs images of at least {4 << layers} px, "
                             f"got {resolution}")
        mods: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, layers + 1):  # the remaining stride-2 convs, then the stride-1 one
            out = width * min(2**i, MAX_MULT)
            stride = 2 if i < layers else 1
            mods += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), _norm(norm, out), nn.LeakyReLU(0.2)]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)
        self.layers = layers
        dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _ResidualBlock(nn.Module):
    """Reflection-padded conv3-IN-ReLU-conv3-IN plus the input."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """Images (N, C, R, R) -> images of the same size in [-1, 1]: a 7×7 conv, `downsamples` stride-2 convs doubling
    the channels, `blocks` residual blocks, as many transposed convs back, a 7×7 conv; instance norm throughout, so
    each image is normalised on its own statistics in training and sampling alike."""

    def __init__(self, channels: int, resolution: int, width: int = 64, blocks: int = 6, downsamples: int = 2) -> None:
        super().__init__()
        if resolution % 2**downsamples:
            raise ValueError(f"a resolution of {resolution} cannot be halved {downsamples} times")
        mods: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), nn.InstanceNorm2d(width),
                                 nn.ReLU()]
        ch = width
        for _ in range(downsamples):
            mods += [nn.Conv2d(ch, 2 * ch, 3, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU()]
            ch *= 2
        mods += [_ResidualBlock(ch) for _ in range(blocks)]
        for _ in range(downsamples):
            mods += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        mods += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*mods)
        dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
