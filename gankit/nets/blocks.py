"""Layers and helpers shared by every network family."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv/linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def spectral_normalize(module: nn.Module) -> nn.Module:
    """Constrain every conv/linear weight of `module` to spectral norm 1 (Miyato et al. 2018), in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_normalize(child)
    return module


class MinibatchStd(nn.Module):
    """Append the mean std of features across groups of samples as one extra channel (Karras et al. 2018).

    A collapsed generator makes every sample alike, so a small std is evidence D can use against it.
    (N, C, ...) -> (N, C + 1, ...)
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g = self.group_size if n % self.group_size == 0 else n
        grouped = x.reshape(g, n // g, *x.shape[1:])  # sample i of every group lies along dim 0
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=tuple(range(1, x.dim())))  # (n/g,)
        feature = std.repeat(g).reshape(n, 1, *([1] * (x.dim() - 2))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, feature], dim=1)


class Packed(nn.Module):
    """PacGAN (Lin et al. 2018): D scores `pack` consecutive samples jointly, concatenated along dim 1.

    (N, C, ...) -> D((N / pack, pack·C, ...)) -> (N / pack,) logits; packed sets penalise collapse.
    """

    def __init__(self, net: nn.Module, pack: int) -> None:
        super().__init__()
        self.net, self.pack = net, pack

    def _pack(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def features(self, x: Tensor) -> Tensor:
        return self.net.features(self._pack(x))

    def logits_from(self, h: Tensor) -> Tensor:
        return self.net.logits_from(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self._pack(x))


class CoordChannels(nn.Module):
    """Append each pixel's x and y in [-1, 1] as two channels (CoordConv, Liu et al. 2018), so the next conv can
    tie what it draws to where it is (tried for moving objects: docs/video.md). (N, C, H, W) -> (N, C + 2, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # (2, H, W): y then x
        return torch.cat([x, grid.expand(n, -1, -1, -1)], dim=1)


class PixelNorm(nn.Module):
    """Scale each pixel's feature vector to unit mean square (Karras et al. 2018): keeps G's activations from
    escalating, in place of batch norm. (N, C, ...) -> same shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """A linear layer with equalised learning rate (Karras et al. 2018): weights drawn N(0, 1/lr_mul²) and scaled at
    run time by lr_mul·gain/√fan_in, so Adam's step moves every layer alike; `lr_mul` < 1 slows a layer (StyleGAN's
    mapping net uses 0.01). With equalized=False the same initial function is stored in the weights directly."""

    def __init__(self, fan_in: int, fan_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, gain: float = 1.0,
                 equalized: bool = True) -> None:
        super().__init__()
        he = gain / fan_in**0.5
        self.scale, self.lr_mul = (he * lr_mul, lr_mul) if equalized else (1.0, 1.0)
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / (self.lr_mul if equalized else 1 / he))
        self.bias = nn.Parameter(torch.full((fan_out,), bias_init / self.lr_mul))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias * self.lr_mul, x, (self.weight * self.scale).t())


class EqualConv2d(nn.Module):
    """A same-padded k×k convolution with equalised learning rate (see EqualLinear)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, gain: float = 2**0.5, bias: bool = True,
                 equalized: bool = True) -> None:
        super().__init__()
        he = gain / (in_ch * kernel * kernel) ** 0.5
        self.scale = he if equalized else 1.0
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel) * (1.0 if equalized else he))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.padding = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
