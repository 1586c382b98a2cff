"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images before D.

Augmenting both, in D's and G's steps, keeps D from memorising a small training set while G still learns the
un-augmented distribution. Images are (N, C, H, W) in [-1, 1]; every op draws its randomness per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def color(x: Tensor) -> Tensor:
    """Random brightness (±0.5), saturation (×0–2) and contrast (×0.5–1.5), per sample."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ratio·size pixels in x and y, filling with zeros (a differentiable gather)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    ys = (gy[None] + dy).clamp(-1, h) + 1  # indices into a 1-pixel zero-padded image
    xs = (gx[None] + dx).clamp(-1, w) + 1
    padded = F.pad(x, (1, 1, 1, 1))
    idx = (ys * (w + 2) + xs).flatten(1)  # (N, H·W)
    out = padded.flatten(2).gather(2, idx[:, None].expand(-1, x.shape[1], -1))
    return out.view_as(x)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of side ratio·size per image, centred anywhere (so it may be cut by the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = (gy[None] >= top) & (gy[None] < top + ch) & (gx[None] >= left) & (gx[None] < left + cw)
    return x * (~inside)[:, None].to(x.dtype)


def affine(x: Tensor, degrees: float = 15.0, scale: float = 0.1, shift: float = 0.125) -> Tensor:
    """Rotate by up to ±degrees, scale by 1 ± scale and shift by up to shift·size, per sample; the edge pixels fill
    what comes into view (for IMSAT-style invariance terms on real images, not for DiffAugment)."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device) * 2 - 1) * (degrees * torch.pi / 180)
    zoom = 1 + (torch.rand(n, device=x.device) * 2 - 1) * scale
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / zoom, -angle.sin() / zoom
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / zoom, angle.cos() / zoom
    theta[:, :, 2] = (torch.rand(n, 2, device=x.device) * 2 - 1) * (2 * shift)  # grid units: the image spans 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def simclr_view(x: Tensor, degrees: float = 180.0, scale: float = 0.15, shift: float = 0.15) -> Tensor:
    """One strongly augmented view per image for a contrastive term (SimCLR's recipe, sized for procedural images):
    colour scrambled (channels permuted, inverted or greyed at random, then gain and offset), then rotated, scaled,
    shifted and mirrored. Two views of one image share only what survives: its shape. Not for DiffAugment."""
    n, c = x.shape[:2]
    x = (x + 1) / 2
    if c > 1:
        order = torch.rand(n, c, device=x.device).argsort(1)  # a random permutation of the channels per image
        x = x.gather(1, order[:, :, None, None].expand_as(x))
        grey = torch.rand(n, 1, 1, 1, device=x.device) < 0.3
        x = torch.where(grey, x.mean(1, keepdim=True).expand_as(x), x)
    x = torch.where(torch.rand(n, 1, 1, 1, device=x.device) < 0.5, 1 - x, x)
    gain = 0.6 + 0.8 * torch.rand(n, c, 1, 1, device=x.device)
    x = x * gain + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5) * 0.4
    x = affine(x * 2 - 1, degrees=degrees, scale=scale, shift=shift)
    return torch.where(torch.rand(n, 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)


OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policy: str) -> Tensor:
    """Apply the comma-separated ops of `policy` in order ("" is the identity)."""
    for name in filter(None, policy.split(",")):
        x = OPS[name](x)
    return x
