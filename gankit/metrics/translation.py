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


# ----------------------------------------------------------------------------------------------- super-resolution
# The SRGAN paper's protocol (Ledig et al. 2017, after the SR literature's MATLAB code): PSNR and SSIM on the
# luminance Y of ITU-R BT.601 (Y in [16, 235] on a 0-255 scale, peak 255), `scale` pixels cropped from each border,
# computed per image and averaged.

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004
BT601 = (65.481, 128.553, 24.966)  # RGB in [0, 1] -> Y offset by 16


def luma(x: Tensor, border: int = 0) -> Tensor:
    """Y (N, 1, H - 2·border, W - 2·border) on the 0-255 scale of RGB (or grey) images x in [-1, 1]."""
    unit = (x.double() + 1) / 2
    if unit.shape[1] == 3:
        y = 16 + sum(w * unit[:, c : c + 1] for c, w in enumerate(BT601))
    else:
        y = 16 + 219 * unit[:, :1]
    return y[..., border : y.shape[-2] - border, border : y.shape[-1] - border] if border else y


def psnr_y(x: Tensor, y: Tensor, border: int) -> Tensor:
    """Per-image PSNR (N,) in dB on the luminance, borders cropped, peak 255."""
    mse = (luma(x, border) - luma(y, border)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def ssim_y(x: Tensor, y: Tensor, border: int) -> Tensor:
    """Per-image SSIM (N,) on the luminance, borders cropped: Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, range 255,
    averaged over the positions where the whole window fits."""
    a, b = luma(x, border), luma(y, border)
    half = SSIM_WINDOW // 2
    g = torch.exp(-((torch.arange(SSIM_WINDOW, dtype=torch.float64) - half) ** 2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def blur(t: Tensor) -> Tensor:
        return torch.nn.functional.conv2d(t, window)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1)


def sharpness(x: Tensor, border: int = 0) -> Tensor:
    """Per-image gradient energy (N,): the mean squared difference of neighbouring luminance values (0-255 scale),
    across and down; blur lowers it, crisp edges and texture raise it."""
    y = luma(x, border)
    return ((y[..., :, 1:] - y[..., :, :-1]).pow(2).flatten(1).mean(1)
            + (y[..., 1:, :] - y[..., :-1, :]).pow(2).flatten(1).mean(1))
