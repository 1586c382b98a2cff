"""DCGAN (Radford et al. 2016) G and D for square images of side 8-256 (a power of two) and any channel count."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .blocks import CoordChannels, MinibatchStd, dcgan_init


def _levels(resolution: int) -> int:
    """Number of ×2 stages between 4×4 and the image: 16 -> 2, 32 -> 3, 64 -> 4."""
    levels = int(math.log2(resolution)) - 2
    if resolution != 4 * 2**levels or levels < 1 or resolution > 256:
        raise ValueError(f"DCGAN needs a power-of-two resolution in [8, 256], got {resolution}")
    return levels


class DCGANGenerator(nn.Module):
    """z (N, z_dim) -> images (N, C, R, R) in [-1, 1]: a 4×4 projection, then stride-2 transposed convs halving width.

    `start=8` projects z to an 8×8 map instead (one stride-2 stage fewer): each cell of the first map covers 4 pixels
    of a 32×32 image rather than 8, so what z places is placed more finely (moving objects; docs/video.md).
    `coords=True` gives every transposed conv after the first the pixels' coordinates as two more input channels
    (CoordConv)."""

    def __init__(self, z_dim: int, channels: int, resolution: int, width: int = 64, start: int = 4,
                 coords: bool = False) -> None:
        super().__init__()
        self.z_dim = z_dim
        if start not in (4, 8, 16) or start >= resolution:
            raise ValueError(f"DCGAN's first map must be 4, 8 or 16 pixels and smaller than the image, got {start}")
        levels = _levels(resolution) + 2 - int(math.log2(start))  # ×2 stages from the first map to the image
        ch = width * 2 ** (levels - 1)  # at the first map; 512 for 64×64 with width 64 (as in pytorch/examples)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, start, 1, 0, bias=False), nn.BatchNorm2d(ch),
                                   nn.ReLU(True)]

        def up(ch_in: int, ch_out: int) -> list[nn.Module]:  # a ×2 transposed conv, given coordinates if asked
            return [CoordChannels()] * coords + [nn.ConvTranspose2d(ch_in + 2 * coords, ch_out, 4, 2, 1, bias=False)]

        for _ in range(levels - 1):  # (N, ch, s, s) -> (N, ch/2, 2s, 2s)
            layers += [*up(ch, ch // 2), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [*up(ch, channels), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """images (N, C, R, R) -> logits (N,): stride-2 convs doubling width down to 4×4 (no norm on the first)."""

    def __init__(self, channels: int, resolution: int, width: int = 64, batchnorm: bool = True,
                 minibatch_std: bool = False) -> None:
        super().__init__()
        levels = _levels(resolution)
        ch = width
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(levels - 1):  # (N, ch, s, s) -> (N, 2ch, s/2, s/2)
            norm = [nn.BatchNorm2d(ch * 2)] if batchnorm else []
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not batchnorm), *norm, nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd() if minibatch_std else nn.Identity()
        self.head = nn.Conv2d(ch + int(minibatch_std), 1, 4, 1, 0, bias=False)  # (N, ch, 4, 4) -> (N, 1, 1, 1)
        dcgan_init(self)

    def features(self, x: Tensor, block: int = -1) -> Tensor:
        """The feature map after stride-2 block `block` (as a list index: -1 the last, at 4×4; 0 the first)."""
        if block == -1:  # every forward pass: the whole body, no search
            return self.body(x)
        ends = [i for i, layer in enumerate(self.body) if isinstance(layer, nn.LeakyReLU)]
        return self.body[: ends[block] + 1](x)

    def logits_from(self, h: Tensor) -> Tensor:
        """Logits (N,) from `features(x)`, so wrappers can add heads without running the body twice."""
        return self.head(self.mbstd(h)).flatten()

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_from(self.features(x))


class DCGANEncoder(nn.Module):
    """images (N, C, R, R) -> latents (N, z_dim): the discriminator's conv stack (no batch norm) with a z_dim-wide
    head; trained on a generator's own samples, it gives inversion a starting guess (Zhu et al. 2016)."""

    def __init__(self, channels: int, resolution: int, z_dim: int, width: int = 32) -> None:
        super().__init__()
        self.body = DCGANDiscriminator(channels, resolution, width, batchnorm=False).body
        self.head = nn.Conv2d(width * 2 ** (_levels(resolution) - 1), z_dim, 4, 1, 0)  # (N, ch, 4, 4) -> (N, z, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x)).flatten(1)
