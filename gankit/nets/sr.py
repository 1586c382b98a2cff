"""Super-resolution nets (SRGAN, Ledig et al. 2017): the SRResNet generator and SRGAN's strided discriminator."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import dcgan_init


class _Residual(nn.Module):
    """conv3-BN-PReLU-conv3-BN plus the input."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.PReLU(ch),
                                  nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Images (N, C, r, r) -> (N, C, scale·r, scale·r) in [-1, 1]: a 9×9 conv, `blocks` residual blocks at the input's
    resolution with a skip over all of them, ×2 sub-pixel upsampling steps (conv to 4× channels, pixel shuffle), a
    9×9 conv out. Everything heavy runs at the low resolution; only the upsampling convs see larger maps.

    `bicubic_skip` adds the bicubic upsampling of the input to the output (whose last conv starts at zero), so the
    net starts as bicubic interpolation and learns only the correction; the paper's SRResNet has no such skip and
    ends in tanh, which needs far longer training to get back to bicubic quality."""

    def __init__(self, channels: int, scale: int = 4, width: int = 64, blocks: int = 16,
                 bicubic_skip: bool = False) -> None:
        super().__init__()
        steps = int(math.log2(scale))
        if 2**steps != scale or steps < 1:
            raise ValueError(f"SRResNet upsamples by powers of two, got scale {scale}")
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU(width))
        self.body = nn.Sequential(*[_Residual(width) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.up = nn.Sequential(*[nn.Sequential(nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2),
                                                nn.PReLU(width)) for _ in range(steps)])
        self.scale, self.bicubic_skip = scale, bicubic_skip
        out = nn.Conv2d(width, channels, 9, 1, 4)
        if bicubic_skip:
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
        self.tail = out if bicubic_skip else nn.Sequential(out, nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        y = self.tail(self.up(h + self.body(h)))
        if self.bicubic_skip:
            up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            y = (up + y).clamp(-1, 1)
        return y


class SRDiscriminator(nn.Module):
    """(N, C, R, R) -> logits (N,): SRGAN's D, conv pairs (stride 1 then 2) doubling channels from `width`, until
    4×4 (at most four pairs), then a dense layer of 16·width and one logit."""

    def __init__(self, channels: int, resolution: int, width: int = 64) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        ch, size = width, resolution
        for i in range(min(4, int(math.log2(resolution)) - 2)):
            out = width * 2**i
            first = [nn.Conv2d(ch, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)] if i else []
            mods += [*first, nn.Conv2d(out, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            ch, size = out, size // 2
        self.body = nn.Sequential(*mods)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(ch * size * size, 16 * width), nn.LeakyReLU(0.2),
                                  nn.Linear(16 * width, 1))
        dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x)).flatten()
