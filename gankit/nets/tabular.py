"""Networks for encoded table rows: a residual MLP generator with per-block output activations and a packed critic.

The row layout is a list of spans, [size, "tanh" | "softmax"] (gankit.data.tabular.spans): scalars go through tanh,
one-hot blocks through a Gumbel-softmax while training (differentiable and nearly one-hot) and are drawn exactly,
by the Gumbel-max trick with the caller's generator, when sampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Residual(nn.Module):
    """Linear → batch norm → ReLU, its output concatenated to its input (the layer widens the row)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(dim_in, dim_out), nn.BatchNorm1d(dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class TableGenerator(nn.Module):
    """(noise ⊕ condition) → raw row logits through residual layers; `activate` turns them into a row."""

    def __init__(self, dim_in: int, dims: list[int], spans: list[list]) -> None:
        super().__init__()
        layers, width = [], dim_in
        for d in dims:
            layers.append(Residual(width, d))
            width += d
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, sum(size for size, _ in spans))
        self.spans = [(int(size), str(act)) for size, act in spans]

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))

    def activate(self, raw: Tensor, tau: float, generator: torch.Generator | None = None,
                 hard: bool = False) -> Tensor:
        """tanh for scalars; for one-hot blocks a Gumbel-softmax at temperature tau, or (hard) a one-hot draw from
        softmax(logits) with noise from `generator`."""
        parts, at = [], 0
        for size, act in self.spans:
            block = raw[:, at:at + size]
            at += size
            if act == "tanh":
                parts.append(torch.tanh(block))
                continue
            u = torch.rand(block.shape, generator=generator).to(block.device).clamp_(1e-10, 1 - 1e-10)
            noisy = block - torch.log(-torch.log(u))
            if hard:
                parts.append(F.one_hot(noisy.argmax(1), size).to(block.dtype))
            else:
                parts.append(torch.softmax(noisy / tau, dim=1))
        return torch.cat(parts, dim=1)


class PackedCritic(nn.Module):
    """PacGAN critic for rows: `pack` consecutive rows (each with its condition) are scored together, through
    Linear → LeakyReLU(0.2) → Dropout layers; no batch norm, so gradient penalties stay per example."""

    def __init__(self, dim_in: int, dims: list[int], pack: int, dropout: float) -> None:
        super().__init__()
        layers, width = [], dim_in * pack
        for d in dims:
            layers += [nn.Linear(width, d), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = d
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        self.pack = pack

    def features(self, x: Tensor) -> Tensor:
        return self.body(x.reshape(x.shape[0] // self.pack, -1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
