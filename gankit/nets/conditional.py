"""Class conditioning for any G/D family: label concatenation (the seeds' cGAN), the projection discriminator,
and extra heads on D's features (ACGAN's auxiliary classifier, InfoGAN's Q network)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConcatConditionalG(nn.Module):
    """G(z, y) = net(z ⊕ onehot(y)) (Mirza & Osindero 2014); `net` is built for z_dim + num_classes inputs."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net, self.num_classes = net, num_classes
        self.z_dim = net.z_dim - num_classes

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1))


class ConcatConditionalD(nn.Module):
    """D(x, y) = net(x ⊕ onehot(y)): one extra feature per class for vectors, one constant channel per class for images.

    `net` is built for in_channels + num_classes (images) or in_dim + num_classes (vectors).
    """

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def _join(self, x: Tensor, y: Tensor) -> Tensor:
        onehot = F.one_hot(y, self.num_classes).to(x.dtype)  # (N, K)
        if x.dim() > 2:  # (N, C, H, W) -> (N, C + K, H, W)
            onehot = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return torch.cat([x.flatten(1) if x.dim() == 2 else x, onehot], dim=1)

    def features(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net.features(self._join(x, y))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(self._join(x, y))


class ProjectionD(nn.Module):
    """Projection discriminator (Miyato & Koyama 2018): logit = ψ(h) + ⟨embed(y), Σ h⟩, h = D's last features."""

    def __init__(self, net: nn.Module, num_classes: int, feature_channels: int) -> None:
        super().__init__()
        self.net = net
        self.embed = nn.Embedding(num_classes, feature_channels)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net.features(x)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.net.features(x)
        pooled = h.flatten(2).sum(2) if h.dim() > 2 else h  # (N, C): sum over positions, as in the paper
        return self.net.logits_from(h) + (self.embed(y) * pooled).sum(1)


class HeadedD(nn.Module):
    """D plus a linear head on its flattened last features: returns (logits, head outputs) from one body pass.

    ACGAN's auxiliary classifier (outputs = class logits) and InfoGAN's Q network (outputs = code statistics).
    """

    def __init__(self, net: nn.Module, feature_shape: tuple[int, ...], outputs: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = net
        self.head = nn.Sequential(nn.Linear(math.prod(feature_shape), hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, outputs))

    def features(self, x: Tensor) -> Tensor:
        return self.net.features(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net.features(x)
        return self.net.logits_from(h), self.head(h.flatten(1))


@torch.no_grad()
def feature_shape(net: nn.Module, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one sample's `features` (probed with two zero inputs, in eval mode so no statistic moves)."""
    mode = net.training
    net.eval()
    shape = tuple(net.features(torch.zeros(2, *in_shape)).shape[1:])
    net.train(mode)
    return shape
