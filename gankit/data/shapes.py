"""Procedural RGB shapes: coloured circles, squares, triangles, stars, rings and crosses on tinted backgrounds.

Every image is described by a `ShapeSpecs` row (shape, colour, centre, size, rotation, background base colour,
gradient, noise level and noise seed) and `render` is a pure function of those rows: the same specs give the same
pixels at any batch size or order. That makes the set reusable beyond unconditional training:

    specs = random_specs(16, torch.Generator().manual_seed(0))      # 16 random objects
    a = render(specs)                                                # (16, 3, 32, 32) uint8
    b = render(replace(specs, color=(specs.color + 1) % len(COLORS)))  # paired domain: only the colour differs
    frames = [render(replace(specs, center=specs.center + t * 0.02)) for t in range(8)]  # video: the object moves
    captions(specs)                                                  # ["a red star on a dark background", ...]

Shapes are drawn from exact signed distance functions with analytic anti-aliasing (coverage = clamp(½ − d/pixel)),
so edges are smooth at any resolution without supersampling, and 20,000 images at 32×32 take about a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor

from ..errors import UserError
from .base import Dataset

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
COLORS: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple", "white")
COLOR_RGB: dict[str, tuple[float, float, float]] = {  # in [0, 1]; far apart from each other and from grey
    "red": (0.90, 0.10, 0.10), "yellow": (0.95, 0.85, 0.10), "green": (0.10, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95), "purple": (0.60, 0.20, 0.80), "white": (1.00, 1.00, 1.00),
}
BACKGROUNDS: tuple[str, ...] = ("dark", "light")  # a background is dark when its base luminance is below 0.5
LABELS: tuple[str, ...] = ("shape", "color", "shape_color")
DEFAULT_N = 20_000
DEFAULT_RESOLUTION = 32

SIZE_RANGE = (0.2, 0.42)  # circumradius as a fraction of the image side: every shape fits inside its circle
DARK_GREY, LIGHT_GREY = (0.04, 0.26), (0.70, 0.92)  # base grey level of each background tone
TINT = 0.08  # per-channel offset of the background base, ± this
GRADIENT = 0.25  # luminance change across the image, at most
NOISE = 0.05  # std of the per-pixel luminance noise, at most
STRIPE_FREQUENCY = 8  # render(stripes=...): periods of the diagonal stripes along each side (every 4 px of a row at 32)
DARK_ONLY = ("white",)  # colours too close to light grey: always on a dark background
LUMA = (0.299, 0.587, 0.114)


@dataclass
class ShapeSpecs:
    """N objects to draw, one row each; coordinates are fractions of the image side, so any resolution works.

    shape, color: (N,) int64 indices into SHAPES and COLORS. center: (N, 2) float (x, y), (0, 0) the top-left corner.
    size: (N,) circumradius. rotation: (N,) radians, counter-clockwise; rotation 0 has the triangle and star
    pointing up. background: (N, 3) base RGB in [0, 1]. gradient: (N, 2) luminance change per image side along
    (x, y). noise: (N,) std of the luminance noise. noise_seed: (N,) int64: the noise pattern, fixed per row.
    Change any field with `dataclasses.replace` and render again: everything else stays identical.
    """

    shape: Tensor
    color: Tensor
    center: Tensor
    size: Tensor
    rotation: Tensor
    background: Tensor
    gradient: Tensor
    noise: Tensor
    noise_seed: Tensor

    def __len__(self) -> int:
        return self.shape.shape[0]

    def __getitem__(self, index: Tensor | slice | int) -> ShapeSpecs:
        """The rows `index` (a slice, an index tensor or a mask) as a new ShapeSpecs."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ShapeSpecs(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def tone(self) -> Tensor:
        """(N,) int64 index into BACKGROUNDS: 0 dark, 1 light (from the base colour's luminance)."""
        return ((self.background @ torch.tensor(LUMA)) >= 0.5).long()


def select(names: Sequence[str] | None, valid: Sequence[str], what: str) -> list[int]:
    """Canonical indices of `names` (all when None), in canonical order; unknown names are a UserError."""
    if names is None:
        return list(range(len(valid)))
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise UserError(f"unknown {what} {', '.join(map(repr, unknown))}" if unknown else f"no {what}s chosen",
                        hint=f"choose from: {', '.join(valid)}")
    return sorted({valid.index(name) for name in names})


@dataclass(frozen=True)
class Difficulty:
    """How varied the random objects are (the knobs of `data.size_range`, `jitter`, `rotation`, ...); the defaults
    are the full set. Every knob scales the same random draws, so sets that differ only in difficulty share their
    shapes, colours and seeds row by row."""

    size_range: tuple[float, float] = SIZE_RANGE  # circumradius as a fraction of the side, drawn uniformly
    jitter: float = 1.0  # centre: 0 always the image centre, 1 anywhere the whole shape fits
    rotation: float = 360.0  # degrees: rotations drawn from [0, rotation); 0 keeps every shape upright
    noise: float = NOISE  # per-pixel luminance noise std, at most
    gradient: float = GRADIENT  # luminance change across the image, at most
    backgrounds: tuple[str, ...] = BACKGROUNDS  # background tones to draw from (DARK_ONLY colours stay dark)

    def __post_init__(self) -> None:
        low, high = self.size_range
        checks = [(0 < low <= high <= 0.5, "size_range", "two sizes 0 < min <= max <= 0.5 (fractions of the side)"),
                  (0 <= self.jitter <= 1, "jitter", "a number from 0 (centred) to 1 (anywhere)"),
                  (0 <= self.rotation <= 360, "rotation", "degrees from 0 (upright) to 360"),
                  (0 <= self.noise <= 1, "noise", "a noise std from 0 to 1"),
                  (0 <= self.gradient <= 1, "gradient", "a luminance change from 0 to 1")]
        for ok, name, hint in checks:
            if not ok:
                raise UserError(f"shapes difficulty data.{name}={getattr(self, name)!r} is out of range", hint=hint)
        select(self.backgrounds, BACKGROUNDS, "background")

    @property
    def is_default(self) -> bool:
        return self == Difficulty()


def random_specs(n: int, generator: torch.Generator, shapes: Sequence[str] | None = None,
                 colors: Sequence[str] | None = None, difficulty: Difficulty | None = None) -> ShapeSpecs:
    """`n` random objects from the named `shapes` and `colors` (default: all), a pure function of the generator state.

    Uniform shape, colour, size, centre (the whole shape stays inside), rotation and background tone (dark or light
    grey with a random tint, gradient and noise), each within the ranges of `difficulty` (default: the full set);
    DARK_ONLY colours always get a dark background.
    """
    d = difficulty or Difficulty()
    shape_ids, color_ids = torch.tensor(select(shapes, SHAPES, "shape")), torch.tensor(select(colors, COLORS, "colour"))
    g = generator
    shape = shape_ids[torch.randint(len(shape_ids), (n,), generator=g)]
    color = color_ids[torch.randint(len(color_ids), (n,), generator=g)]
    size = d.size_range[0] + (d.size_range[1] - d.size_range[0]) * torch.rand(n, generator=g)
    free = torch.rand(n, 2, generator=g)  # where in the free range around the shape its centre falls
    center = size[:, None] + (1 - 2 * size[:, None]) * (free if d.jitter == 1 else 0.5 + d.jitter * (free - 0.5))
    rotation = 2 * math.pi * (d.rotation / 360) * torch.rand(n, generator=g)
    light = torch.rand(n, generator=g) < 0.5
    if len(set(d.backgrounds)) == 1:
        light = torch.full((n,), d.backgrounds[0] == "light")
    level, tint = torch.rand(n, 1, generator=g), TINT * (2 * torch.rand(n, 3, generator=g) - 1)
    dark_bg = DARK_GREY[0] + (DARK_GREY[1] - DARK_GREY[0]) * level + tint  # (N, 3)
    light_bg = LIGHT_GREY[0] + (LIGHT_GREY[1] - LIGHT_GREY[0]) * level + tint
    light &= ~torch.isin(color, torch.tensor([COLORS.index(name) for name in DARK_ONLY]))
    background = torch.where(light[:, None], light_bg, dark_bg).clamp(0, 1)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    gradient = d.gradient * torch.rand(n, 1, generator=g) * torch.stack([angle.cos(), angle.sin()], dim=1)
    noise = d.noise * torch.rand(n, generator=g)
    noise_seed = torch.randint(2**31 - 1, (n,), generator=g)
    return ShapeSpecs(shape, color, center, size, rotation, background, gradient, noise, noise_seed)


# Signed distances (negative inside) in the object's frame: y up, circumradius 1. Exact distances, after
# Inigo Quilez's 2D distance functions, so `0.5 - distance in pixels` is the pixel's coverage near an edge.
def _circle(x: Tensor, y: Tensor) -> Tensor:
    return torch.hypot(x, y) - 0.8


def _square(x: Tensor, y: Tensor) -> Tensor:
    half = 0.7  # circumradius 0.99
    dx, dy = x.abs() - half, y.abs() - half
    return torch.hypot(dx.clamp(min=0), dy.clamp(min=0)) + torch.maximum(dx, dy).clamp(max=0)


def _triangle(x: Tensor, y: Tensor) -> Tensor:
    r, k = math.sqrt(3) / 2, math.sqrt(3)  # half the side: circumradius 1, centroid at the origin, apex up
    x, y = x.abs() - r, y + r / k
    fold = x + k * y > 0
    x, y = torch.where(fold, (x - k * y) / 2, x), torch.where(fold, (-k * x - y) / 2, y)
    x = x - x.clamp(-2 * r, 0)
    return -torch.hypot(x, y) * torch.sign(y)


def _star(x: Tensor, y: Tensor) -> Tensor:
    inner = 0.45  # inner radius over outer radius (0.38 for a regular pentagram; fatter reads better when small)
    k1x, k1y = 0.809016994375, -0.587785252292  # fold the plane into one of the ten half-arms
    x = x.abs()
    for kx in (k1x, -k1x):
        dot = (kx * x + k1y * y).clamp(min=0)
        x, y = x - 2 * dot * kx, y - 2 * dot * k1y
    x, y = x.abs(), y - 1
    bax, bay = -inner * k1y, inner * k1x - 1  # edge from the outer tip to the inner vertex
    h = ((x * bax + y * bay) / (bax**2 + bay**2)).clamp(0, 1)
    return torch.hypot(x - bax * h, y - bay * h) * torch.sign(y * bax - x * bay)


def _ring(x: Tensor, y: Tensor) -> Tensor:
    return (torch.hypot(x, y) - 0.675).abs() - 0.175  # annulus between radii 0.5 and 0.85


def _cross(x: Tensor, y: Tensor) -> Tensor:
    arm, half_width = 0.9, 0.3  # a plus sign: arms reach 0.9, 0.6 wide
    x, y = x.abs(), y.abs()
    x, y = torch.maximum(x, y), torch.minimum(x, y)
    qx, qy = x - arm, y - half_width
    k = torch.maximum(qx, qy)
    wx, wy = torch.where(k > 0, qx, half_width - x), torch.where(k > 0, qy, -k)
    return torch.sign(k) * torch.hypot(wx.clamp(min=0), wy.clamp(min=0))


SDF = {"circle": _circle, "square": _square, "triangle": _triangle, "star": _star, "ring": _ring, "cross": _cross}


def _hash32(x: Tensor) -> Tensor:
    """Chris Wellons' lowbias32 integer hash on int64 tensors holding 32-bit values (products wrap, then masked)."""
    mask = 0xFFFFFFFF
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & mask
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & mask
    return x ^ (x >> 16)


def _noise(seeds: Tensor, resolution: int) -> Tensor:
    """(N, R, R) zero-mean, unit-std uniform noise, a pure function of each row's seed and the pixel position."""
    pixel = torch.arange(resolution * resolution, dtype=torch.int64).view(1, resolution, resolution)
    bits = _hash32((_hash32(seeds & 0xFFFFFFFF)[:, None, None] + pixel) & 0xFFFFFFFF)
    return (bits.float() / 2**32 - 0.5) * math.sqrt(12)


def _render_chunk(specs: ShapeSpecs, resolution: int, outline: float = 0.0, stripes: float = 0.0) -> Tensor:
    """(N, 3, R, R) float in [0, 1]; `outline` > 0 draws only a stroke of that width (in circumradii) along the edge,
    `stripes` > 0 adds diagonal stripes of that luminance amplitude to the background."""
    n, r = len(specs), resolution
    coord = (torch.arange(r, dtype=torch.float32) + 0.5) / r  # pixel centres in (0, 1)
    px, py = coord.view(1, 1, r), coord.view(1, r, 1)
    cx, cy = specs.center[:, 0, None, None].float(), specs.center[:, 1, None, None].float()
    size = specs.size.view(n, 1, 1).float()
    cos, sin = specs.rotation.cos().view(n, 1, 1), specs.rotation.sin().view(n, 1, 1)
    dx, dy = (px - cx) / size, (cy - py) / size  # (N, R, R) each: y up, circumradius 1
    x, y = cos * dx + sin * dy, cos * dy - sin * dx  # rotate the pixel by -rotation = the shape by +rotation
    dist = torch.empty(n, r, r)
    for index, name in enumerate(SHAPES):
        mask = specs.shape == index
        if mask.any():
            dist[mask] = SDF[name](x[mask], y[mask])
    if outline:  # inside the stroke: within outline/2 of the edge, on either side
        dist = dist.abs() - outline / 2
    coverage = (0.5 - dist * size * r).clamp_(0, 1).unsqueeze(1)  # distance in pixels -> covered fraction
    luminance = (specs.gradient[:, 0, None, None] * (px - 0.5) + specs.gradient[:, 1, None, None] * (py - 0.5)
                 + specs.noise.view(n, 1, 1) * _noise(specs.noise_seed, r))
    if stripes:
        luminance = luminance + stripes * torch.sin(2 * math.pi * STRIPE_FREQUENCY * (px + py))
    background = (specs.background.float()[:, :, None, None] + luminance.unsqueeze(1)).clamp_(0, 1)
    rgb = torch.tensor([COLOR_RGB[name] for name in COLORS])[specs.color][:, :, None, None]
    return background + coverage * (rgb - background)


def render(specs: ShapeSpecs, resolution: int = DEFAULT_RESOLUTION, outline: float = 0.0,
           stripes: float = 0.0) -> Tensor:
    """(N, 3, R, R) uint8 images of `specs` (as the image loaders store them; `Dataset.take` maps to [-1, 1]);
    `outline` > 0 draws each shape as a stroke of that width (a fraction of its circumradius) instead of filled;
    `stripes` > 0 lays diagonal stripes of that luminance amplitude over the background (not over the shape); they
    need 4 pixels a period (32 px and more), and vanish at 16 px, where every pixel falls on a zero of the wave.

    Each image depends only on its own row, so batches, subsets and re-renders agree pixel for pixel.
    """
    chunk = max(1, 2**18 // resolution**2)  # a quarter million pixels at a time: temporaries stay in cache
    out = torch.empty(len(specs), 3, resolution, resolution, dtype=torch.uint8)
    for start in range(0, len(specs), chunk):
        image = _render_chunk(specs[start : start + chunk], resolution, outline, stripes)
        out[start : start + chunk] = image.mul_(255).round_().to(torch.uint8)
    return out


def captions(specs: ShapeSpecs) -> list[str]:
    """One short caption per row: "a red star on a dark background"."""
    return [f"a {COLORS[c]} {SHAPES[s]} on a {BACKGROUNDS[t]} background"
            for s, c, t in zip(specs.shape.tolist(), specs.color.tolist(), specs.tone.tolist())]


def label_names(index: Tensor, label: str) -> list[str]:
    """Names of canonical label indices (as the `shapes` evaluator's `classify` returns them): "star" for "shape",
    "red" for "color", "red star" for "shape_color" (index = shape_index * len(COLORS) + color_index)."""
    if label not in LABELS:
        raise UserError(f"unknown shapes label '{label}'", hint=f"choose from: {', '.join(LABELS)}")
    if label == "shape":
        return [SHAPES[i] for i in index.tolist()]
    if label == "color":
        return [COLORS[i] for i in index.tolist()]
    return [f"{COLORS[i % len(COLORS)]} {SHAPES[i // len(COLORS)]}" for i in index.tolist()]


def shapes(n: int = DEFAULT_N, resolution: int = DEFAULT_RESOLUTION, shapes: Sequence[str] | None = None,
           colors: Sequence[str] | None = None, label: str = "shape", seed: int = 0,
           difficulty: Difficulty | None = None) -> Dataset:
    """`n` random shape images (N, 3, R, R) uint8, labelled by `label`, with attributes; seeded.

    label "shape": classes are the chosen shapes; "color": the chosen colours; "shape_color": one class per pair,
    "red star", numbered shape-major (shape position * number of chosen colours + colour position). Class lists
    follow the canonical order of SHAPES and COLORS. `attributes` hold canonical indices into SHAPES, COLORS and
    BACKGROUNDS whatever the subset, so they mean the same thing in every configuration. `difficulty` narrows how
    the objects vary (size, position, rotation, background); the default is the full set.
    """
    if label not in LABELS:
        raise UserError(f"unknown shapes label '{label}'", hint=f"choose from: {', '.join(LABELS)}")
    return dataset_of(specs_for(n, seed, shapes, colors, difficulty), resolution, shapes, colors, label, seed,
                      difficulty)


def specs_for(n: int, seed: int, shapes: Sequence[str] | None = None, colors: Sequence[str] | None = None,
              difficulty: Difficulty | None = None) -> ShapeSpecs:
    """The specs behind `shapes(n, ..., seed=seed)`, row for row: for sets derived from the same objects."""
    return random_specs(n, torch.Generator().manual_seed(seed), shapes, colors, difficulty)


def dataset_of(specs: ShapeSpecs, resolution: int, shapes: Sequence[str] | None, colors: Sequence[str] | None,
               label: str, seed: int, difficulty: Difficulty | None) -> Dataset:
    """The labelled Dataset of rendered `specs` (drawn from `shapes`, `colors` and `difficulty` with `seed`)."""
    shape_ids, color_ids = select(shapes, SHAPES, "shape"), select(colors, COLORS, "colour")
    shape_pos = torch.full((len(SHAPES),), -1, dtype=torch.long)
    shape_pos[shape_ids] = torch.arange(len(shape_ids))
    color_pos = torch.full((len(COLORS),), -1, dtype=torch.long)
    color_pos[color_ids] = torch.arange(len(color_ids))
    if label == "shape":
        y, names = shape_pos[specs.shape], [SHAPES[i] for i in shape_ids]
    elif label == "color":
        y, names = color_pos[specs.color], [COLORS[i] for i in color_ids]
    else:
        y = shape_pos[specs.shape] * len(color_ids) + color_pos[specs.color]
        names = [f"{COLORS[c]} {SHAPES[s]}" for s in shape_ids for c in color_ids]
    attributes = {"shape": specs.shape, "color": specs.color, "background": specs.tone}
    return Dataset(name="shapes", kind="image", x=render(specs, resolution), y=y, class_names=names,
                   info={"seed": seed, "label": label, "generated": True,
                         **({} if difficulty is None or difficulty.is_default else {"difficulty": asdict(difficulty)}),
                         "evaluator": {"name": "shapes", "label": label},
                         "attribute_names": {"shape": list(SHAPES), "color": list(COLORS),
                                             "background": list(BACKGROUNDS)}},
                   attributes=attributes)
