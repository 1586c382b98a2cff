"""Networks for encoded table rows: a residual MLP generator with per-block output activations and a packed critic.

The row layout is a list of spans, [size, "tanh" | "softmax"] (gankit.data.tabular.spans): scalars go through tanh,
one-hot blocks through a Gumbel-softmax while training (differentiable and nearly one-hot) and are drawn exactly,
by the Gumbel-max trick with the caller's generator, when sampling.
"""

from __future__ import annotations

import numpy as np
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
        # where each activation applies: tanh positions, and the one-hot blocks grouped by width (one (blocks,
        # width) index per width, so a wide category column pads nothing)
        starts = np.cumsum([0] + [int(size) for size, _ in spans])[:-1]
        self.register_buffer("tanh_at", torch.tensor([int(at) for at, (_, act) in zip(starts, spans) if act == "tanh"],
                                                     dtype=torch.long), persistent=False)
        self._widths = sorted({int(size) for size, act in spans if act == "softmax"})
        for w in self._widths:  # buffers, so they move with the module to its device
            self.register_buffer(f"blocks_{w}", torch.tensor([[int(at) + i for i in range(w)] for at, (size, act)
                                                               in zip(starts, spans)
                                                               if act == "softmax" and int(size) == w]),
                                 persistent=False)

    @property
    def block_index(self) -> list[Tensor]:
        """Per width of one-hot block, the (blocks, width) positions of those blocks in a row."""
        return [getattr(self, f"blocks_{w}") for w in self._widths]

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))

    def activate(self, raw: Tensor, tau: float, generator: torch.Generator | None = None,
                 hard: bool = False) -> Tensor:
        """tanh for scalars; for one-hot blocks a Gumbel-softmax at temperature tau, or (hard) a one-hot draw from
        softmax(logits) with noise from `generator`. Blocks of one width at once."""
        out = raw.clone()
        out[:, self.tanh_at] = torch.tanh(raw[:, self.tanh_at])
        for index in self.block_index:
            logits = raw[:, index]  # (N, blocks, width)
            u = torch.rand(logits.shape, generator=generator).to(raw.device).clamp_(1e-10, 1 - 1e-10)
            noisy = logits - torch.log(-torch.log(u))
            y = F.one_hot(noisy.argmax(2), index.shape[1]).to(raw.dtype) if hard else torch.softmax(noisy / tau, 2)
            out[:, index] = y
        return out


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


class ColumnClassifier(nn.Module):
    """Predicts one categorical column, the one-hot block [start, start + size) of an encoded row, from the row's
    other columns (it never sees its own block)."""

    def __init__(self, data_dim: int, start: int, size: int, width: int) -> None:
        super().__init__()
        keep = [i for i in range(data_dim) if not start <= i < start + size]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long), persistent=False)
        self.start, self.size = start, size
        self.net = nn.Sequential(nn.Linear(len(keep), width), nn.LeakyReLU(0.2), nn.Linear(width, size))

    def forward(self, rows: Tensor) -> Tensor:
        return self.net(rows[:, self.keep])

    def loss(self, rows: Tensor) -> Tensor:
        """Cross-entropy of the prediction against the rows' own category."""
        return F.cross_entropy(self(rows), rows[:, self.start:self.start + self.size].argmax(1))
