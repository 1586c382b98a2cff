"""StyleGAN-lite's generator (Karras et al. 2019, 2020), CPU-sized: a mapping net z -> w, and a synthesis net from a
learned 4×4 constant through modulated/demodulated 3×3 convs with per-layer noise, one style w per layer, and
skip-connected toRGB outputs summed across resolutions (StyleGAN2's "skip" G). D is `ProgressiveDiscriminator`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import EqualLinear, PixelNorm
from .progressive import LRELU, channels_at, resolutions

STYLE_PARTS = ("coarse", "middle", "fine")  # resolutions split in three, lowest first: what style mixing swaps


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> w (N, w_dim): pixel-normalised z through `depth` dense layers at lr × `lr_mul`. While
    training it keeps `w_avg`, the running mean of w, which truncation pulls toward."""

    def __init__(self, z_dim: int, w_dim: int, depth: int = 8, lr_mul: float = 0.01, avg_beta: float = 0.995) -> None:
        super().__init__()
        layers: list[nn.Module] = [PixelNorm()]
        for i in range(depth):
            layers += [EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul, gain=2**0.5),
                       nn.LeakyReLU(LRELU)]
        self.net = nn.Sequential(*layers)
        self.avg_beta = avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor) -> Tensor:
        w = self.net(z)
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.mean(0), 1 - self.avg_beta)
        return w


class ModulatedConv(nn.Module):
    """A k×k conv whose input channels are scaled by a style (an affine map of w) and whose output channels are
    then demodulated to unit expected std; computed as scale -> shared conv -> rescale, which on CPUs is faster than
    StyleGAN2's per-sample grouped weights and gives the same result."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale, self.demodulate, self.padding = (in_ch * kernel * kernel) ** -0.5, demodulate, kernel // 2

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        style = self.affine(w)  # (N, in)
        weight = self.weight * self.scale
        out = F.conv2d(x * style[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:  # 1/σ of each output channel: √(Σ_in,k (w·s)²), per sample
            coef = torch.rsqrt(style.square() @ weight.square().sum((2, 3)).t() + 1e-8)  # (N, out)
            out = out * coef[:, :, None, None]
        return out


class StyleLayer(nn.Module):
    """(upsample ×2), modulated 3×3 conv, per-pixel noise times a learned strength, bias, leaky ReLU (gain √2).

    Noise is fresh while training and a fixed buffer in eval mode, so sampling is a function of z alone."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, size: int, up: bool = False) -> None:
        super().__init__()
        self.up = up
        self.conv = ModulatedConv(in_ch, out_ch, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", torch.randn(1, 1, size, size))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device) if self.training else self.noise_const
        x = x + noise * self.noise_strength + self.bias[:, None, None]
        return F.leaky_relu(x, LRELU) * 2**0.5


class ToRGB(nn.Module):
    """A modulated 1×1 conv to image channels (no demodulation), plus bias."""

    def __init__(self, in_ch: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[:, None, None]


class StyleGenerator(nn.Module):
    """z (N, z_dim) -> images (N, C, R, R): `mapping` then `synthesis(ws)` with one w per layer (`num_ws`)."""

    def __init__(self, z_dim: int, w_dim: int, channels: int, resolution: int, width: int = 32,
                 mapping_depth: int = 8, lr_mul: float = 0.01, avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        sides = resolutions(resolution)
        ch = [channels_at(r, resolution, width) for r in sides]
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_depth, lr_mul, avg_beta)
        self.const = nn.Parameter(torch.randn(1, ch[0], 4, 4))
        layers, self.layer_level = [StyleLayer(ch[0], ch[0], w_dim, 4)], [0]
        for i in range(1, len(sides)):
            layers += [StyleLayer(ch[i - 1], ch[i], w_dim, sides[i], up=True), StyleLayer(ch[i], ch[i], w_dim, sides[i])]
            self.layer_level += [i, i]
        self.layers = nn.ModuleList(layers)
        self.to_rgb = nn.ModuleList(ToRGB(c, channels, w_dim) for c in ch)
        self.num_ws = len(layers)
        parts = np.array_split(np.arange(len(sides)), len(STYLE_PARTS))
        self.parts = {name: [j for j, lv in enumerate(self.layer_level) if lv in set(part.tolist())]
                      for name, part in zip(STYLE_PARTS, parts)}  # style part -> the layers (ws) it covers

    def styles(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """ws (N, num_ws, w_dim): w = mapping(z), pulled toward the mean w by ψ < 1, repeated for every layer."""
        w = self.mapping(z)
        if psi != 1:
            w = torch.lerp(self.mapping.w_avg, w, psi)
        return w[:, None].expand(-1, self.num_ws, -1)

    def synthesis(self, ws: Tensor) -> Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)  # not len(ws): an export traces the batch size
        rgb = None
        for j, layer in enumerate(self.layers):
            x = layer(x, ws[:, j])
            last_of_level = j + 1 == self.num_ws or self.layer_level[j + 1] != self.layer_level[j]
            if last_of_level:
                y = self.to_rgb[self.layer_level[j]](x, ws[:, j])
                rgb = y if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + y
        return rgb

    def forward(self, z: Tensor, psi: float = 1.0) -> Tensor:
        return self.synthesis(self.styles(z, psi))
