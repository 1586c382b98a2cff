"""Reading a shapes image's position and background without a network: the measures behind attribute accuracy.

The shape and colour of a generated image are read by the frozen shapes evaluator; where the object lies and how
dark the background is are read directly from the pixels, by rules that are exact on the real data (a test holds
them to ≥ 0.99 there): the background is the per-channel median of the outermost pixel ring, the object is what
differs from it, and its position is the centroid of that difference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

LUMA = torch.tensor([0.299, 0.587, 0.114])
OBJECT_THRESHOLD = 0.15  # RGB distance (in [0, 1] units) from the background below which a pixel is background


def border_colour(x: Tensor) -> Tensor:
    """(N, 3) median colour of each image's outermost pixel ring, images (N, 3, H, W) in [-1, 1], in [0, 1]."""
    x = (x + 1) / 2
    ring = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)  # (N, 3, 4H - 4)
    return ring.median(dim=2).values


def read_background(x: Tensor) -> Tensor:
    """(N,) 0 dark, 1 light: the luminance of the border colour against 1/2 (gankit.data.shapes BACKGROUNDS)."""
    return ((border_colour(x) @ LUMA) >= 0.5).long()


def object_centre(x: Tensor) -> Tensor:
    """(N, 2) centroid (x, y) as fractions of the side, (0, 0) top left, of how far each pixel is from the border
    colour (beyond OBJECT_THRESHOLD); an image with no such pixel gives NaN."""
    n, _, h, w = x.shape
    distance = ((x + 1) / 2 - border_colour(x)[:, :, None, None]).norm(dim=1)  # (N, H, W)
    weight = (distance - OBJECT_THRESHOLD).clamp(min=0)
    total = weight.sum(dim=(1, 2))
    ys, xs = (torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w
    cx = (weight.sum(1) * xs).sum(1) / total
    cy = (weight.sum(2) * ys).sum(1) / total
    return torch.stack([cx, cy], dim=1)


def read_attributes(x: Tensor, classifier, layout) -> dict[str, Tensor]:
    """What each image (N, 3, 32, 32) in [-1, 1] shows, as canonical indices (N,): shape and colour by the frozen
    shapes evaluator `classifier`, position (cell of `layout`, a gankit.data.captions.Layout; -1 when no object is
    found) and background by the rules above."""
    shape, color = [], []
    with torch.no_grad():
        for part in x.split(1000):
            _, shape_logits, color_logits = classifier.heads(part)
            shape.append(shape_logits.argmax(1))
            color.append(color_logits.argmax(1))
    centre = object_centre(x)
    found = ~centre.isnan().any(1)
    position = torch.full((len(x),), -1, dtype=torch.long)
    position[found] = layout.cell(centre[found])
    return {"shape": torch.cat(shape), "color": torch.cat(color), "position": position,
            "background": read_background(x)}


def attribute_accuracy(x: Tensor, truth: dict[str, Tensor], classifier, layout,
                       by: tuple[Tensor, list[str]] | None = None) -> dict[str, Any]:
    """Share of images whose every attribute in `truth` (name -> canonical indices (N,)) reads as asked; with `by`
    (a group index per image, the groups' names) also per group, under "by_group": which group fails."""
    seen = read_attributes(x, classifier, layout)
    right = {name: (seen[name] == values).float() for name, values in truth.items()}
    out: dict[str, Any] = {name: hit.mean().item() for name, hit in right.items()}
    if by is not None:
        group, names = by
        out["by_group"] = {names[g]: {name: hit[group == g].mean().item() for name, hit in right.items()}
                           for g in group.unique().tolist()}
    return out
