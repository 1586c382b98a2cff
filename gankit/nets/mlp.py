"""Fully connected G and D: the seed's vanilla GAN for toy 2D data (and small flattened images)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .blocks import MinibatchStd


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> samples (N, *out_shape); tanh output for images, linear for vectors."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: list[int], batchnorm: bool = False,
                 image: bool = False) -> None:
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden:
            layers += [nn.Linear(width, h)] + ([nn.BatchNorm1d(h)] if batchnorm else []) + [nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        if image:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """samples (N, *in_shape) -> logits (N,); `features` exposes the last hidden layer (for feature matching)."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], minibatch_std: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd() if minibatch_std else nn.Identity()
        self.head = nn.Linear(width + int(minibatch_std), 1)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.flatten(1))

    def logits_from(self, h: Tensor) -> Tensor:
        """Logits (N,) from `features(x)`, so wrappers can add heads without running the body twice."""
        return self.head(self.mbstd(h)).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_from(self.features(x))


