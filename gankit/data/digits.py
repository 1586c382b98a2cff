"""scikit-learn's 8×8 handwritten digits (1,797 images, shipped with the package), served at 16×16 in [-1, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Dataset


def digits(resolution: int = 16) -> Dataset:
    """All 1,797 digits as (N, 1, resolution, resolution) float32 in [-1, 1], labels 0-9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    if resolution != 8:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = (x * 2 - 1).clamp_(-1, 1)
    y = torch.tensor(bunch.target, dtype=torch.long)
    return Dataset(name="digits", kind="image", x=x, y=y, class_names=[str(i) for i in range(10)],
                   info={"evaluator": {"name": "digits", "label": "digit"}})
