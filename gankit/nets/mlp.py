"""Fully connected G and D: the seed's vanilla GAN for toy 2D data (and small flattened images).

With `members` > 1 each net is an ensemble of independent MLPs trained at once: rows come in `members` consecutive
blocks, block e goes through member e's weights only (batched matrix products), so one run trains several seeds'
worth of models on larger matrices. Member e's tensors are the e-th slices of the ensemble's, in nn.Linear's layout.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .blocks import MinibatchStd


class EnsembleLinear(nn.Module):
    """`members` independent linear layers: (members, n, in) -> (members, n, out); weight (members, out, in)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default initialisation, drawn for each member
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, out_features).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def _linear(members: int, in_features: int, out_features: int) -> nn.Module:
    return nn.Linear(in_features, out_features) if members == 1 else EnsembleLinear(members, in_features, out_features)


def _blocks(x: Tensor, members: int) -> Tensor:
    """(N, d) -> (members, N / members, d): member e's rows are the e-th block; one member keeps (N, d)."""
    if members == 1:
        return x
    if x.shape[0] % members:
        raise ValueError(f"an ensemble of {members} members takes a multiple of {members} rows, got {x.shape[0]}")
    return x.reshape(members, x.shape[0] // members, *x.shape[1:])


class MLPGenerator(nn.Module):
    """z (N, z_dim) -> samples (N, *out_shape); tanh output for images, linear for vectors."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], hidden: list[int], batchnorm: bool = False,
                 image: bool = False, members: int = 1) -> None:
        super().__init__()
        if batchnorm and members > 1:
            raise ValueError("batch norm would mix the members' statistics: an ensemble MLP has none")
        self.z_dim, self.out_shape, self.members = z_dim, tuple(out_shape), members
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden:
            layers += [_linear(members, width, h)] + ([nn.BatchNorm1d(h)] if batchnorm else []) + [nn.ReLU()]
            width = h
        layers.append(_linear(members, width, math.prod(self.out_shape)))
        if image:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(_blocks(z, self.members)).reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """samples (N, *in_shape) -> logits (N,); `features` exposes the last hidden layer (for feature matching)."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], minibatch_std: bool = False,
                 members: int = 1) -> None:
        super().__init__()
        self.members = members
        layers: list[nn.Module] = []
        width = math.prod(in_shape)
        for h in hidden:
            layers += [_linear(members, width, h), nn.LeakyReLU(0.2)]
            width = h
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd() if minibatch_std else nn.Identity()
        self.head = _linear(members, width + int(minibatch_std), 1)

    def features(self, x: Tensor) -> Tensor:
        return self.body(_blocks(x.flatten(1), self.members)).reshape(x.shape[0], -1)

    def logits_from(self, h: Tensor) -> Tensor:
        """Logits (N,) from `features(x)`, so wrappers can add heads without running the body twice."""
        if self.members == 1:
            return self.head(self.mbstd(h)).squeeze(1)
        blocks = _blocks(h, self.members)  # minibatch std within each member's rows: members never see each other
        return self.head(torch.stack([self.mbstd(b) for b in blocks])).reshape(h.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_from(self.features(x))
