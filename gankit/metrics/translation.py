"""Pixel measures for image-to-image models: PSNR and L1 against a ground truth, and a histogram-matching baseline.

Images are (N, C, H, W) in [-1, 1]; PSNR and L1 are computed in [0, 1] units (peak 1) over the whole set: the PSNR
of the mean squared error of all pixels of all pairs. (A mean of per-image PSNRs is undefined once one output equals
its truth, which a translation that leaves some images unchanged does often.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

PSNR_CAP = 100.0  # dB for identical sets (MSE 0)


def psnr(x: Tensor, y: Tensor) -> float:
    """PSNR in dB of the set x against the set y, both in [-1, 1], with peak 1 in [0, 1] units."""
    mse = ((x.double() - y.double()) / 2).pow(2).mean().item()
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else -10 * math.log10(mse)


def l1(x: Tensor, y: Tensor) -> float:
    """Mean absolute difference of the sets x and y in [0, 1] units."""
    return ((x.double() - y.double()) / 2).abs().mean().item()


def histogram_match(x: Tensor, reference: Tensor) -> Tensor:
    """x with each channel's values mapped so their distribution over all of x matches that channel's over all of
    `reference` (quantile mapping): the colour transfer a translator must beat to have learnt anything local."""
    out = torch.empty_like(x)
    for c in range(x.shape[1]):
        source, target = x[:, c].flatten().contiguous(), reference[:, c].flatten().sort().values
        ordered = source.sort().values
        # each pixel's quantile in x (equal values share their mid-rank, so they map to one value)
        rank = (torch.searchsorted(ordered, source) + torch.searchsorted(ordered, source, right=True) - 1) / 2
        position = (rank.double() / max(len(source) - 1, 1) * (len(target) - 1)).round().long()
        out[:, c] = target[position].view_as(x[:, c])
    return out
