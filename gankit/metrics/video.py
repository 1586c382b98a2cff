"""Clip metrics as pure functions of tensors: content consistency, average content distance (ACD), motion tracks.

Clips are (N, T, C, H, W) in [-1, 1]. The object of a frame is found without knowing the data: the background is
the frame's per-channel median (the object covers well under half the frame), and a pixel's foreground weight is
its colour distance from that background beyond a small threshold. From it come the object's centroid (for motion)
and its mean colour (for the colour ACD of MoCoGAN's shape-motion protocol).
"""

from __future__ import annotations

import torch
from torch import Tensor

FOREGROUND_THRESHOLD = 0.1  # colour distance from the background, in [0, 1] RGB units, below which a pixel is background


def foreground(clips: Tensor) -> Tensor:
    """(N, T, H, W) foreground weights: L2 colour distance (in [0, 1] units) from the frame's median colour, minus
    FOREGROUND_THRESHOLD, clamped at 0."""
    unit = (clips.float() + 1) / 2
    background = unit.flatten(3).median(dim=3).values[..., None, None]  # (N, T, C, 1, 1)
    return ((unit - background).norm(dim=2) - FOREGROUND_THRESHOLD).clamp_min(0)


def centroids(clips: Tensor) -> Tensor:
    """(N, T, 2) the object's (x, y) centre per frame, in fractions of the side (0.5 when a frame shows none)."""
    weight = foreground(clips)
    h, w = weight.shape[-2:]
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    total = weight.sum(dim=(2, 3))
    x = (weight * xs).sum(dim=(2, 3)) / total.clamp_min(1e-8)
    y = (weight * ys[:, None]).sum(dim=(2, 3)) / total.clamp_min(1e-8)
    track = torch.stack([x, y], dim=2)
    return torch.where(total[..., None] > 1e-8, track, torch.full_like(track, 0.5))


def object_colors(clips: Tensor) -> Tensor:
    """(N, T, C) mean colour (in [0, 1] units) of each frame's foreground pixels (the whole frame when it has none)."""
    unit = (clips.float() + 1) / 2
    mask = (foreground(clips) > 0).float().unsqueeze(2)  # (N, T, 1, H, W)
    count = mask.sum(dim=(3, 4))
    colour = (unit * mask).sum(dim=(3, 4)) / count.clamp_min(1)
    return torch.where(count > 0, colour, unit.mean(dim=(3, 4)))


def second_difference(tracks: Tensor) -> Tensor:
    """Mean L2 norm of c(t+1) - 2c(t) + c(t-1) over clips and times: 0 for constant velocity (a scalar tensor)."""
    return (tracks[:, 2:] - 2 * tracks[:, 1:-1] + tracks[:, :-2]).norm(dim=2).mean()


def mean_speed(tracks: Tensor) -> Tensor:
    """Mean L2 norm of c(t+1) - c(t): how far the object moves per frame (a still clip is smooth, but still)."""
    return (tracks[:, 1:] - tracks[:, :-1]).norm(dim=2).mean()


def content_distance(features: Tensor) -> Tensor:
    """Average content distance (ACD): the mean over clips and consecutive frame pairs of ||f(t+1) - f(t)||₂, for
    per-frame features (N, T, d). Lower means the content holds across the clip."""
    return (features[:, 1:] - features[:, :-1]).norm(dim=2).mean()


def consistency(classes: Tensor) -> Tensor:
    """Per-frame classes (N, T) -> the mean over clips of the share of frames showing the clip's most common class."""
    mode = classes.mode(dim=1).values  # (N,)
    return (classes == mode[:, None]).float().mean()


def majority_shares(classes: Tensor, n_classes: int) -> Tensor:
    """Per-frame classes (N, T) -> (n_classes,) the share of clips whose most common class is each class."""
    return torch.bincount(classes.mode(dim=1).values, minlength=n_classes)[:n_classes].float() / len(classes)


def total_variation(p: Tensor, q: Tensor) -> Tensor:
    """Total variation distance between two distributions over the same classes: 0 alike, 1 disjoint."""
    return (p - q).abs().sum() / 2


def crop_around(clips: Tensor, centres: Tensor, side: int) -> Tensor:
    """(N, T, C, side, side) crops of each frame centred on `centres` (N, T, 2) (fractions of the side); the frame is
    padded with its darkest value (-1) where a crop leaves it."""
    n, t, c, h, w = clips.shape
    half = side // 2
    padded = torch.nn.functional.pad(clips.flatten(0, 1), (half, half, half, half), value=-1.0)
    corner = (centres.flatten(0, 1) * torch.tensor([w, h]) - half).round().long()
    corner = torch.stack([corner[:, 0].clamp(-half, w - half), corner[:, 1].clamp(-half, h - half)], dim=1) + half
    out = torch.stack([frame[:, top:top + side, left:left + side]
                       for frame, (left, top) in zip(padded, corner.tolist())])
    return out.view(n, t, c, side, side)
