"""Two image domains, A and B, for translation models (`data.pair`): B is A under a documented transformation.

Because B is computed from A, a hidden ground truth B exists for every A, even when training is unpaired
(`data.paired=false`: A and B then come from disjoint objects, or disjoint halves of a fixed set), so translation
can be scored against the truth (PSNR, L1) and not only by how real it looks.

    palette  shapes only: each object's colour is replaced (red→yellow→green→blue→purple→red; white stays), the
             background and everything else unchanged, so only pixels of the object differ
    outline  shapes only: each object drawn as a stroke along its edge (0.3 of its circumradius wide), not filled
    stripes  shapes only, 32 px or more: diagonal stripes (luminance ± 0.1, 8 periods per side) laid over the
             background, the objects unchanged: a texture change, as horses to zebras is
    night    any image: darkened and tinted blue, per channel b = gain·a + offset in [0, 1] units
    invert   any image: b = 1 − a (in [0, 1] units)
    thicken  any image: bright strokes dilated by one pixel (a 3×3 maximum)
    downscale  any image: A is B made `data.scale` times smaller (bicubic, antialiased), for super-resolution
    folders  your own pairs: data.path holding A/ and B/ with the same file names, or unpaired folders
             data.path_a and data.path_b (data.paired=false)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import UserError
from .base import Batch, BatchSampler, Dataset, as_dtype_of, as_float
from .folder import image_folder, list_images, load_image
from .shapes import COLORS, DEFAULT_N, DEFAULT_RESOLUTION, STRIPE_FREQUENCY, ShapeSpecs, dataset_of, render, specs_for

UNPAIRED_SEED_OFFSET = 1  # unpaired shapes: domain B's objects are drawn from seed + this (disjoint from A's)
HELDOUT_SEED_OFFSET = 7919  # truth pairs for eval on shapes: objects drawn from seed + this, seen by no training step
HELDOUT_N = 1000  # truth pairs drawn for eval on generated data

# palette: a 5-cycle over the colours that may sit on either background; white (dark backgrounds only) stays white
PALETTE = {"red": "yellow", "yellow": "green", "green": "blue", "blue": "purple", "purple": "red", "white": "white"}
NIGHT_GAIN, NIGHT_OFFSET = (0.35, 0.45, 0.75), (0.02, 0.04, 0.12)  # per RGB channel; grey images use the mean


def _night(x: Tensor) -> Tensor:
    gain, offset = torch.tensor(NIGHT_GAIN), torch.tensor(NIGHT_OFFSET)
    if x.shape[1] != 3:
        gain, offset = gain.mean().expand(x.shape[1]), offset.mean().expand(x.shape[1])
    unit = (x + 1) / 2
    return (unit * gain.view(1, -1, 1, 1) + offset.view(1, -1, 1, 1)) * 2 - 1


def _invert(x: Tensor) -> Tensor:
    return -x


def _thicken(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


# pixel transforms: (N, C, H, W) float in [-1, 1] -> the same; they apply to any image data
PIXEL_TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {"night": _night, "invert": _invert, "thicken": _thicken}
SPEC_TRANSFORMS = ("palette", "outline", "stripes")  # need the objects behind the pixels: shapes only
OUTLINE_WIDTH = 0.3  # outline: the stroke's width as a fraction of the shape's circumradius
STRIPES_AMPLITUDE = 0.1  # stripes: the background stripes' luminance amplitude (the evaluator reads 0.97 of them)
TRANSFORMS = (*SPEC_TRANSFORMS, *PIXEL_TRANSFORMS, "downscale", "folders")


def palette_swap(specs: ShapeSpecs) -> ShapeSpecs:
    """The same objects with each colour replaced by its PALETTE partner."""
    partner = torch.tensor([COLORS.index(PALETTE[name]) for name in COLORS])
    return replace(specs, color=partner[specs.color])


def apply_pixels(name: str, x: Tensor) -> Tensor:
    """Domain B's images for domain A's images `x` (float in [-1, 1] or uint8, returned in the same dtype)."""
    return as_dtype_of(PIXEL_TRANSFORMS[name](as_float(x)).clamp(-1, 1), x)


@dataclass
class PairDataset(Dataset):
    """Domain A in `x` (with A's labels in `y`), domain B in `b`. Paired: row i of `b` is row i of `x` transformed;
    unpaired: `b` holds other objects (its own count), and the truth for any A is still the transform of A."""

    b: Tensor | None = None
    transform: str = ""
    paired: bool = True

    def spec(self) -> dict:
        return {**super().spec(), "kind": "pairs", "pair": {"transform": self.transform, "paired": self.paired,
                                                            "shape_b": list(self.b.shape[1:])}}

    def take_b(self, index: Tensor) -> Tensor:
        """Rows `index` of domain B as float32 in [-1, 1]."""
        return as_float(self.b[index])


@dataclass
class PairBatch(Batch):
    """A batch of domain A (`x`, labels `y`) and one of domain B (`b`): row for row when the data is paired."""

    b: Tensor | None = None


class PairSampler(BatchSampler):
    """Batches of A with batches of B: the same rows when paired, else B from its own shuffled stream (own cursor)."""

    def __init__(self, dataset: PairDataset, batch_size: int, seed: int, device: torch.device | str = "cpu") -> None:
        super().__init__(dataset, batch_size, seed, device)
        self.other = None if dataset.paired else BatchSampler(dataset, batch_size, seed + 1, device, len(dataset.b))

    def state_dict(self) -> dict[str, int]:
        return {**super().state_dict(), **({"cursor_b": self.other.cursor} if self.other else {})}

    def load_state_dict(self, state: dict[str, int]) -> None:
        super().load_state_dict(state)
        if self.other:
            self.other.cursor = int(state["cursor_b"])

    def next(self) -> PairBatch:
        index = self.shard.part(self.indices())
        x, y = self.dataset.take(index)
        b = self.dataset.take_b(index if self.other is None else self.shard.part(self.other.indices()))
        return PairBatch(x=x.to(self.device, non_blocking=True), y=None if y is None else y.to(self.device),
                         b=b.to(self.device, non_blocking=True))


def resize(x: Tensor, size: int) -> Tensor:
    """Images (float in [-1, 1] or uint8, returned in the same dtype) resized to size×size, bicubic, antialiased when
    shrinking (as image libraries downscale)."""
    out = F.interpolate(as_float(x), size=(size, size), mode="bicubic", antialias=size < x.shape[-1],
                        align_corners=False)
    return as_dtype_of(out.clamp(-1, 1), x)


def _pair_images(transform: str, images: Tensor, specs: ShapeSpecs | None, scale: int) -> tuple[Tensor, Tensor]:
    """(A, B) for the same objects: B is A transformed, except for downscale, where A is B made `scale` times
    smaller (the high-resolution image is the given one)."""
    if transform == "downscale":
        return resize(images, images.shape[-1] // scale), images
    if transform == "palette":
        return images, render(palette_swap(specs), images.shape[-1])
    if transform == "outline":
        return images, render(specs, images.shape[-1], outline=OUTLINE_WIDTH)
    if transform == "stripes":
        return images, render(specs, images.shape[-1], stripes=STRIPES_AMPLITUDE)
    return images, apply_pixels(transform, images)


def _from(a: Dataset, x: Tensor, b: Tensor, transform: str, paired: bool, info: dict) -> PairDataset:
    return PairDataset(name=a.name, kind="pairs", x=x, y=a.y, class_names=a.class_names, info={**a.info, **info},
                       attributes=a.attributes, b=b, transform=transform, paired=paired)


def _rows(data: Dataset, rows: slice) -> Dataset:
    return Dataset(name=data.name, kind=data.kind, x=data.x[rows], y=None if data.y is None else data.y[rows],
                   class_names=data.class_names, info=data.info,
                   attributes={k: v[rows] for k, v in data.attributes.items()})


def folder_pairs(cfg) -> PairDataset:
    """The user's own domains: data.path/A and data.path/B paired by file name (suffix aside), or, unpaired,
    every image of data.path_a and of data.path_b; all resized and centre-cropped to data.resolution."""
    resolution, channels = cfg.resolution or DEFAULT_RESOLUTION, cfg.channels or 3
    if not cfg.paired:
        if not (cfg.path_a and cfg.path_b):
            raise UserError("unpaired folders need data.path_a and data.path_b", "e.g. data.path_a=horses/ "
                            "data.path_b=zebras/ data.paired=false")
        a, b = image_folder(cfg.path_a, resolution, channels), image_folder(cfg.path_b, resolution, channels)
        return _from(a, a.x, b.x, "folders", False, {"path_a": cfg.path_a, "path_b": cfg.path_b})
    if not cfg.path:
        raise UserError("paired folders need data.path holding A/ and B/ with the same file names",
                        "e.g. data.path=pairs/ with pairs/A/001.png and pairs/B/001.png")
    root = Path(cfg.path)
    sides = {side: root / side for side in ("A", "B")}
    for side, folder in sides.items():
        if not folder.is_dir():
            raise UserError(f"data.path {cfg.path} has no {side}/ folder", "put domain A in A/ and domain B in B/, "
                            "with the same file names")
    files = {side: {p.relative_to(folder).with_suffix("").as_posix(): p for p in list_images(folder)}
             for side, folder in sides.items()}
    for side, other in (("A", "B"), ("B", "A")):
        alone = sorted(set(files[side]) - set(files[other]))
        if alone:
            raise UserError(f"{sides[side] / files[side][alone[0]].relative_to(sides[side])} has no partner in "
                            f"{sides[other]}/ ({len(alone)} file(s) without one)",
                            "give every image of A/ a file of the same name in B/, or train unpaired")
    names = sorted(files["A"])
    if not names:
        raise UserError(f"data.path {cfg.path}: A/ and B/ hold no image files", "add image pairs")
    images: dict[str, list] = {"A": [], "B": []}
    for name in names:
        pair = {side: files[side][name] for side in ("A", "B")}
        try:
            sizes = {side: Image.open(path).size for side, path in pair.items()}
            for side, path in pair.items():
                images[side].append(load_image(path, resolution, channels))
        except (OSError, ValueError, SyntaxError) as exc:
            raise UserError(f"cannot read the pair {name} ({exc})", "fix or remove both files") from None
        if sizes["A"] != sizes["B"]:
            raise UserError(f"{pair['A']} is {sizes['A'][0]}×{sizes['A'][1]} but {pair['B']} is "
                            f"{sizes['B'][0]}×{sizes['B'][1]}", "the two images of a pair must have the same size")
    x, b = (torch.from_numpy(np.stack(images[side])) for side in ("A", "B"))
    a = Dataset(name="folder", kind="image", x=x, info={"path": str(root), "files": len(names)})
    return _from(a, x, b, "folders", True, {})


def image_pairs(cfg, seed: int, plain: Callable[[], Dataset], difficulty=None) -> PairDataset:
    """The training pairs a config names: shapes render both domains from objects; your own folders are read as
    they are; any other image set gets its second domain from its own images (unpaired: A from the even rows, B
    from the odd rows)."""
    transform, scale = _check(cfg), cfg.scale
    if transform == "folders":
        return folder_pairs(cfg)
    if cfg.name == "shapes":
        n, resolution = cfg.n or DEFAULT_N, cfg.resolution or DEFAULT_RESOLUTION
        names, colors, d = cfg.shapes, cfg.colors, difficulty
        specs = specs_for(n, seed, names, colors, d)
        a = dataset_of(specs, resolution, names, colors, cfg.label, seed, d)
        x, b = _pair_images(transform, a.x, specs, scale)
        if not cfg.paired:
            other = specs_for(n, seed + UNPAIRED_SEED_OFFSET, names, colors, d)
            b = _pair_images(transform, render(other, resolution), other, scale)[1]
        return _from(a, x, b, transform, cfg.paired, {"b_seed": seed if cfg.paired else seed + UNPAIRED_SEED_OFFSET})
    base = plain()
    if base.kind != "image":
        raise UserError(f"data.pair={transform} needs image data", f"data.name={cfg.name} is {base.kind} data")
    if cfg.paired:
        return _from(base, *_pair_images(transform, base.x, None, scale), transform, True, {})
    if len(base) < 2:
        raise UserError(f"data.paired=false splits the images into two halves, but {cfg.name} has {len(base)}",
                        "add images or train paired")
    a = _rows(base, slice(0, None, 2))
    x = _pair_images(transform, a.x, None, scale)[0]
    b = _pair_images(transform, base.x[1::2], None, scale)[1]
    return _from(a, x, b, transform, False, {"split": "A even rows, B odd rows"})


def truth_pairs(cfg, seed: int, plain: Callable[[], Dataset], difficulty=None, n: int = HELDOUT_N) -> PairDataset:
    """Paired (A, true B) for scoring a translator: for shapes, `n` fresh objects that no training image shows;
    for a fixed image set, all its images (the training images: no held-out split exists), `info["heldout"]` says."""
    transform = _check(cfg)
    if transform == "folders":
        if not cfg.paired:
            raise UserError("unpaired folders have no true B for any A", "score on paired folders (data.path with "
                            "A/ and B/)")
        return replace(folder_pairs(cfg), info={"heldout": "no: the training pairs (the data has no held-out split)"})
    if cfg.name == "shapes":
        resolution, names, colors, d = cfg.resolution or DEFAULT_RESOLUTION, cfg.shapes, cfg.colors, difficulty
        specs = specs_for(n, seed + HELDOUT_SEED_OFFSET, names, colors, d)
        a = dataset_of(specs, resolution, names, colors, cfg.label, seed + HELDOUT_SEED_OFFSET, d)
        return _from(a, *_pair_images(transform, a.x, specs, cfg.scale), transform, True,
                     {"heldout": f"{n} objects drawn from seed {seed + HELDOUT_SEED_OFFSET}, not trained on"})
    base = plain()
    return _from(base, *_pair_images(transform, base.x, None, cfg.scale), transform, True,
                 {"heldout": "no: the training images (the data has no held-out split)"})


def _check(cfg) -> str:
    if (cfg.pair == "folders") != (cfg.name == "folder"):
        raise UserError(f"data.pair=folders reads your own folders (data.name=folder), data.name={cfg.name} with "
                        f"data.pair={cfg.pair} does not", "use data.name=folder data.pair=folders, or a transform: "
                        f"{', '.join(t for t in TRANSFORMS if t != 'folders')}")
    if cfg.pair in SPEC_TRANSFORMS and cfg.name != "shapes":
        raise UserError(f"data.pair={cfg.pair} redraws the objects of the shapes data, not {cfg.name} images",
                        f"use data.name=shapes, or a pixel transform: {', '.join(PIXEL_TRANSFORMS)}")
    resolution = cfg.resolution or (DEFAULT_RESOLUTION if cfg.name == "shapes" else None)
    if cfg.pair == "downscale" and resolution and (resolution % cfg.scale or resolution // cfg.scale < 4):
        raise UserError(f"data.pair=downscale: data.resolution={resolution} is not a multiple of data.scale="
                        f"{cfg.scale} with at least 4 pixels left", "e.g. data.resolution=64 data.scale=4")
    smallest = 4 * STRIPE_FREQUENCY  # fewer than 4 px per period and the stripes alias or vanish
    if cfg.pair == "stripes" and resolution and resolution < smallest:
        raise UserError(f"data.pair=stripes draws {STRIPE_FREQUENCY} stripe periods per side, too fine for "
                        f"data.resolution={resolution}", f"use data.resolution={smallest} or more")
    return cfg.pair
