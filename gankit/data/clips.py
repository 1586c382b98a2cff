"""Video clips: the `clip` data kind (samples (T, C, H, W) in [-1, 1], stored uint8) and two procedural sets.

    moving-shapes  one object of the shapes renderer per clip, moving at constant velocity and bouncing off the
                   walls; shape, colour, size, rotation and background fixed per clip (MoCoGAN's synthetic set,
                   rebuilt on gankit.data.shapes)
    moving-digits  one scikit-learn digit per clip (upscaled), moving the same way on a black canvas

Both are pure functions of the seed: clip i depends only on its own row of random draws, so subsets and re-renders
agree pixel for pixel. A path bounces: the centre moves by a fixed velocity per frame and is reflected at the
walls (a triangle wave), so its second difference is zero except at a bounce.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError
from ..io import image_grid, save_gif, save_grid
from .base import Dataset
from .kinds import DataKind, register_kind
from .shapes import BACKGROUNDS, COLORS, SHAPES, Difficulty, random_specs, render, select

DEFAULT_CLIPS = 2000
DEFAULT_FRAMES = 16
DEFAULT_SPEED = (0.02, 0.05)  # fraction of the side per frame
DIGIT_SIZE = 0.5  # moving digits: the digit's side as a fraction of the canvas
GIF_FRAME_MS = 100


def check_speed(speed: tuple[float, float]) -> tuple[float, float]:
    low, high = speed
    if not 0 <= low <= high <= 0.25:
        raise UserError(f"data.speed={list(speed)} is out of range",
                        "give two speeds 0 <= min <= max <= 0.25 (fractions of the side per frame), e.g. [0.02, 0.05]")
    return low, high


def bounce(start: Tensor, velocity: Tensor, low: Tensor, high: Tensor, frames: int) -> Tensor:
    """Positions (N, T, 2) of points starting at `start` (N, 2), moving by `velocity` (N, 2) per frame inside
    [low, high] (N, 1), reflected at the walls: a triangle wave of period 2·(high - low)."""
    t = torch.arange(frames, dtype=torch.float32).view(1, frames, 1)
    span = (high - low).clamp_min(1e-6).unsqueeze(1)  # (N, 1, 1)
    free = start.unsqueeze(1) - low.unsqueeze(1) + velocity.unsqueeze(1) * t  # unreflected distance from the wall
    phase = torch.remainder(free, 2 * span)
    return low.unsqueeze(1) + torch.where(phase > span, 2 * span - phase, phase)


def _velocity(n: int, speed: tuple[float, float], g: torch.Generator) -> Tensor:
    magnitude = speed[0] + (speed[1] - speed[0]) * torch.rand(n, generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    return magnitude[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)


def moving_shapes(n: int = DEFAULT_CLIPS, frames: int = DEFAULT_FRAMES, resolution: int = 32,
                  shapes: list[str] | None = None, colors: list[str] | None = None, seed: int = 0,
                  difficulty: Difficulty | None = None, speed: tuple[float, float] = DEFAULT_SPEED) -> Dataset:
    """`n` clips (N, T, 3, R, R) uint8 of one shape each on a path bouncing off the walls; labels are the shape,
    attributes shape and colour (canonical indices into SHAPES and COLORS, as for still shapes)."""
    speed = check_speed(tuple(speed))
    g = torch.Generator().manual_seed(seed)
    specs = random_specs(n, g, shapes, colors, difficulty)
    velocity = _velocity(n, speed, g)
    size = specs.size[:, None]
    path = bounce(specs.center, velocity, size, 1 - size, frames)  # (N, T, 2): the whole shape stays inside
    # one render per frame: the same objects, only the centre changes (noise pattern and background stay fixed)
    x = torch.stack([render(replace(specs, center=path[:, t]), resolution) for t in range(frames)], dim=1)
    shape_ids = select(shapes, SHAPES, "shape")
    position = {s: i for i, s in enumerate(shape_ids)}
    y = torch.tensor([position[s] for s in specs.shape.tolist()], dtype=torch.long)
    return Dataset(name="moving-shapes", kind="clip", x=x, y=y, class_names=[SHAPES[i] for i in shape_ids],
                   attributes={"shape": specs.shape, "color": specs.color, "background": specs.tone},
                   info={"seed": seed, "generated": True, "evaluator": {"name": "shapes", "label": "shape"},
                         "attribute_names": {"shape": list(SHAPES), "color": list(COLORS),
                                             "background": list(BACKGROUNDS)},
                         "clip": {"frames": frames, "speed": list(speed)}, "paths": path})


def moving_digits(n: int = DEFAULT_CLIPS, frames: int = DEFAULT_FRAMES, resolution: int = 32, seed: int = 0,
                  speed: tuple[float, float] = DEFAULT_SPEED) -> Dataset:
    """`n` clips (N, T, 1, R, R) uint8 of one scikit-learn digit (upscaled to half the side) each, moving on a black
    canvas like moving-shapes; labels are the digit. The evaluator (the digits classifier, 16×16) reads a crop of
    half the side centred on the digit (`info["clip"]["crop"]`)."""
    from sklearn.datasets import load_digits

    speed = check_speed(tuple(speed))
    bunch = load_digits()
    side = max(4, round(resolution * DIGIT_SIZE))
    glyphs = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8) in [0, 1]
    glyphs = F.interpolate(glyphs, size=(side, side), mode="bilinear", align_corners=False).clamp_(0, 1)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(glyphs), (n,), generator=g)
    half = side / 2 / resolution
    low = torch.full((n, 1), half)
    start = half + (1 - 2 * half) * torch.rand(n, 2, generator=g)
    path = bounce(start, _velocity(n, speed, g), low, 1 - low, frames)
    corner = (path * resolution - side / 2).round().long().clamp(0, resolution - side)  # (N, T, 2) top-left (x, y)
    x = torch.zeros(n, frames, 1, resolution, resolution, dtype=torch.uint8)
    pixels = (glyphs[pick] * 255).round().to(torch.uint8)  # (N, 1, side, side)
    for i in range(n):
        for t in range(frames):
            left, top = corner[i, t].tolist()
            x[i, t, :, top:top + side, left:left + side] = pixels[i]
    y = torch.tensor(bunch.target, dtype=torch.long)[pick]
    return Dataset(name="moving-digits", kind="clip", x=x, y=y, class_names=[str(i) for i in range(10)],
                   info={"seed": seed, "generated": True, "evaluator": {"name": "digits", "label": "digit"},
                         "clip": {"frames": frames, "speed": list(speed), "crop": side},
                         "paths": (corner.float() + side / 2) / resolution})


# ----------------------------------------------------------------------------------------------- the data kind


def frames_grid(x: Tensor) -> tuple[Tensor, int]:
    """Clips (N, T, C, H, W) as images (N·T, C, H, W) for a grid with one row per clip, and the row length T."""
    return x.flatten(0, 1), x.shape[1]


@register_kind("clip")
class ClipKind(DataKind):
    """Clips (T, C, H, W) in [-1, 1]: progress pictures and `.png` show one row per clip, frames across; `.gif` is
    a grid of clips playing together; `DIR/` one GIF per clip; `.npz` the arrays. Every file says it is generated."""

    fixed_count = 8
    outputs = (".npz", ".gif", ".png", "/")
    metrics = ("consistency", "clip_class_accuracy", "acd", "motion_smoothness", "frame_fd")
    usage = "gankit sample {run} -n 8 --out clips.gif"

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        images, nrow = frames_grid(fake)
        save_grid(path, images, nrow=nrow, scale=max(1, 64 // fake.shape[-1]), **meta)

    def write_other(self, fmt: str, path: Path, x: Tensor, spec: dict, *, nrow: int | None,
                    cells: list[int] | None = None, meta: dict[str, Any],
                    items: list[dict[str, Any]] | None = None) -> None:
        scale = max(1, 64 // x.shape[-1])
        if fmt == ".png":
            images, row = frames_grid(x)
            save_grid(path, images, nrow=row, scale=scale, **meta)
        elif fmt == ".gif":
            columns = nrow or math.ceil(math.sqrt(len(x)))
            frames = [image_grid(x[:, t], nrow=columns) for t in range(x.shape[1])]
            save_gif(path, frames, scale=scale, duration_ms=GIF_FRAME_MS, **meta)
        else:  # "/": one GIF per clip
            for i, clip in enumerate(x):
                save_gif(Path(path) / f"{i:06d}.gif", [image_grid(frame[None], pad=0) for frame in clip],
                         scale=scale, duration_ms=GIF_FRAME_MS, index=i, **meta)

    def describe(self, x: Tensor, spec: dict) -> str:
        t, c, h, w = x.shape[1:]
        return f"{len(x)} clips of {t} frames ({c}, {h}, {w})"

    def sample_shape(self, spec: dict) -> str:
        t, c, h, w = spec["shape"]
        return f"{t} frames × {c}×{h}×{w}"


__all__ = ["ClipKind", "bounce", "check_speed", "frames_grid", "moving_digits", "moving_shapes"]
