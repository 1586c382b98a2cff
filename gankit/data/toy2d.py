"""Toy 2D mixtures with known mode centres: the PacGAN mode-collapse benchmarks (ring, grid) and a spiral."""

from __future__ import annotations

import math

import torch

from .base import Dataset


def ring_centers(modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """`modes` points evenly spaced on a circle, starting at angle 0. -> (modes, 2)"""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_centers(size: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """size×size points centred on the origin: (-4 + 2i, -4 + 2j) for the default 5×5. -> (size², 2)"""
    coords = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) * spacing
    gx, gy = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def spiral_centers(modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """`modes` points along an Archimedean spiral (one and a half turns) out to `radius`. -> (modes, 2)"""
    t = torch.linspace(0.25, 1.0, modes, dtype=torch.float64)
    angle = 3 * math.pi * t
    return (radius * t[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)).float()


DEFAULT_STD = {"ring": 0.01, "grid": 0.05, "spiral": 0.05}


def mixture(name: str, centers: torch.Tensor, std: float, n: int, seed: int) -> Dataset:
    """n samples of an equal-weight Gaussian mixture; labels are the mode index."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(centers), (n,), generator=g)
    x = centers[labels] + std * torch.randn(n, 2, generator=g)
    names = [f"mode{i}" for i in range(len(centers))]
    return Dataset(name=name, kind="vector", x=x, y=labels, class_names=names, centers=centers, std=std,
                   info={"generated": True})
