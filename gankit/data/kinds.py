"""Data kinds: what a kind of sample (2D points/vectors, images, ...) owns, so trainer, CLI and eval never ask.

A kind owns its batch sampler (and that sampler's resume state), how many fixed samples its progress pictures show
and how they are drawn, its writers (a PNG grid, a scatter, one file per sample, `.npz`), how user inputs are read
(`gankit sample --input`), the inverse transform back to user units, and the metrics `gankit eval` runs by default.

    @register_kind("clip")
    class ClipKind(DataKind): ...

Planned kinds map onto the same interface (docs/design.md): image pairs / two domains (a sampler with one cursor
per domain), tokens (padded batches, `.txt`/`.smi` writers), tables (a conditional-by-column sampler, `.csv` writer,
the exact inverse of the column encoding), clips (GIF writer) and captions (a sampler that yields text with images).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import UserError
from ..io import atomic_path, provenance, save_grid, save_images, save_scatter
from .base import BatchSampler, Dataset
from .captions import PROGRESS_CAPTIONS, CaptionSampler, detokenize, tokenize
from .pairs import PairDataset, PairSampler
from .folder import IMAGE_SUFFIXES, list_images, load_image
from .npz import finite_float32, read_npz, refuse_non_finite

log = logging.getLogger("gankit")
RANGE_SLACK = 1e-3  # images read from .npz may overshoot [-1, 1] by rounding, not by a scale
KINDS: dict[str, DataKind] = {}


def register_kind(name: str):
    """Class decorator: one instance of the kind serves every dataset whose `kind` is `name`."""

    def add(cls: type[DataKind]) -> type[DataKind]:
        cls.name = name
        KINDS[name] = cls()
        return cls

    return add


def kind_of(spec_or_name: dict | str) -> DataKind:
    """The kind of a data spec (or a kind name)."""
    name = spec_or_name if isinstance(spec_or_name, str) else spec_or_name["kind"]
    if name not in KINDS:
        raise UserError(f"unknown data kind '{name}'", f"known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]


class DataKind:
    """Base of every kind: `.npz` output and input work for all of them."""

    name: ClassVar[str] = ""
    fixed_count: ClassVar[int] = 64  # fixed samples behind the progress pictures
    outputs: ClassVar[tuple[str, ...]] = (".npz",)  # what `write` accepts (a suffix, or "/" for a folder)
    metrics: ClassVar[tuple[str, ...]] = ()  # run metrics `gankit eval` tries, by name (gankit.report.RUN_METRICS)
    progress_metric: ClassVar[str | None] = None  # a metric of gankit.metrics.PROGRESS_METRICS logged with samples
    images: ClassVar[bool] = False  # samples are (C, H, W) images that grids and GIFs can show
    usage: ClassVar[str] = "gankit sample {run} -n 64 --out grid.png"  # how to use a trained model, shown after training

    def sampler(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device) -> BatchSampler:
        """Batches for training; the sampler's `state_dict()` goes into checkpoints so resuming continues exactly."""
        return BatchSampler(dataset, batch_size, seed, device)

    def fixed_inputs(self, dataset: Dataset) -> Tensor | None:
        """Inputs behind the progress pictures of models that transform inputs (the first `fixed_count` rows of a
        paired set, say); None for kinds whose models generate from noise alone."""
        return None

    def inverse(self, x: Tensor, spec: dict) -> Tensor:
        """Samples in user units (the model works in its own; identity for images in [-1, 1] and points)."""
        return x

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        """samples/step-N.png for the fixed samples."""
        raise NotImplementedError

    def write(self, path: Path | str, x: Tensor, spec: dict, *, nrow: int | None = None, labels: Tensor | None = None,
              cells: list[int] | None = None, meta: dict[str, Any], items: list[dict[str, Any]] | None = None) -> None:
        """Samples to `path` in the format its suffix (or a trailing "/" for a folder) names, labelled as generated;
        pictures lay sample i at grid cell cells[i] when given (rows of unequal length); `items` are fields of each
        sample's own (the prompt it was drawn for), recorded where a sample has a file of its own."""
        fmt, path = self.check_output(path), Path(path)
        if fmt == ".npz":
            arrays = {"samples": self.inverse(x, spec).numpy(), "generated": np.array(True),
                      "seed": np.array(meta.get("seed", -1)), "provenance": np.array(json.dumps(provenance(**meta)))}
            if labels is not None:
                arrays["labels"] = labels.numpy()
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **arrays)
        else:
            own = {"items": items} if items is not None else {}  # kinds written before `items` existed take none
            self.write_other(fmt, path, x, spec, nrow=nrow, cells=cells, meta=meta, **own)

    def write_other(self, fmt: str, path: Path, x: Tensor, spec: dict, *, nrow: int | None,
                    cells: list[int] | None = None, meta: dict[str, Any],
                    items: list[dict[str, Any]] | None = None) -> None:
        raise NotImplementedError

    def check_output(self, path: Path | str) -> str:
        """The output format of `path` (see output_format), or a UserError when this kind cannot write it."""
        fmt = output_format(path)
        named = Path(str(path)).suffix.lower()
        if fmt == "/" and not str(path).endswith(("/", "\\")) and named in self.outputs:
            raise UserError(f"cannot write {path}: it is a folder, and its name asks for a {named} file",
                            f"give another name, or {path}/ to write one file per sample into it")
        if fmt not in self.outputs:
            names = {".npz": "FILE.npz", ".png": "FILE.png", "/": "a directory ending in /"}
            what = "a folder" if fmt == "/" else (fmt or "a file without suffix")
            raise UserError(f"--out {path}: unknown output type for {self.name} samples ({what})",
                            f"use {', '.join(names.get(o, 'FILE' + o) for o in self.outputs)}")
        return fmt

    def describe(self, x: Tensor, spec: dict) -> str:
        """What `x` holds, for messages: "64 samples (1, 16, 16)"."""
        return f"{len(x)} samples {tuple(x.shape[1:])}"

    def sample_shape(self, spec: dict) -> str:
        """One sample's shape in words, for summaries: "1×16×16"."""
        return "×".join(str(s) for s in spec.get("shape") or [])

    def describe_inputs(self, inputs: Tensor, spec: dict) -> list[dict[str, Any]] | None:
        """Each sample's own provenance fields for the inputs it was made from (none for most kinds)."""
        return None

    def read_condition(self, items: list[str], spec: dict) -> Tensor:
        """The condition vector that `gankit sample --condition COLUMN=VALUE` names (tables); other kinds take none."""
        raise UserError(f"{self.name} models take no --condition", "sample without --condition")

    def read_prompt(self, prompts: list[str], spec: dict) -> Tensor:
        """What `gankit sample --prompt TEXT` asks for, as the model's inputs (text-to-image models); others take none."""
        raise UserError(f"{self.name} models take no text prompt", "sample without --prompt")

    def read_inputs(self, path: Path, spec: dict) -> Tensor:
        """Inputs for `gankit sample --input` (images to translate, rows to condition on, ...): `.npz` for any kind,
        its first array or the one named `samples`."""
        if path.suffix.lower() != ".npz":
            raise UserError(f"{path}: {self.name} inputs are read from .npz files", "save them with numpy.savez")
        arrays = read_npz(path)
        if not arrays:
            raise UserError(f"{path} holds no arrays")
        key = "samples" if "samples" in arrays else next(iter(arrays))
        arr, where = arrays[key], f"{path}['{key}']"
        if arr.dtype.kind not in "fiu":
            raise UserError(f"{where}: expected numbers, got dtype {arr.dtype}")
        if arr.ndim == 0 or len(arr) == 0:
            raise UserError(f"{where} holds no inputs (shape {arr.shape})", "give at least one row")
        refuse_non_finite(arr, where)
        return torch.from_numpy(finite_float32(arr, where))


def _size(path: Path) -> tuple[int, int]:
    """An image file's (width, height), from its header."""
    with Image.open(path) as image:
        return image.size


def output_format(path: Path | str) -> str:
    """"/" for a folder (a path ending in a separator, or an existing directory), else the lower-case suffix."""
    text = str(path)
    try:
        folder = text.endswith(("/", "\\")) or Path(text).is_dir()
    except OSError:  # a name too long for the file system: writing it will say so
        folder = False
    return "/" if folder else Path(text).suffix.lower()


@register_kind("vector")
class VectorKind(DataKind):
    """Vectors such as toy 2D points: pictures are scatters over the real data (first two coordinates)."""

    fixed_count = 2500  # the PacGAN mode protocol's sample count, so progress scores compare with eval
    outputs = (".npz", ".png")
    metrics = ("modes2d", "features")
    progress_metric = "modes"

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        real = dataset.x[torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:1000]]
        save_scatter(path, fake.flatten(1)[:, :2], real.flatten(1)[:, :2], dataset.centers, title=title, **meta)

    def write_other(self, fmt: str, path: Path, x: Tensor, spec: dict, *, nrow: int | None,
                    cells: list[int] | None = None, meta: dict[str, Any],
                    items: list[dict[str, Any]] | None = None) -> None:
        centers = spec.get("centers")
        save_scatter(path, x.flatten(1)[:, :2], centers=torch.tensor(centers) if centers else None,
                     title=f"{meta.get('run', '')}: {len(x)} samples", **meta)


@register_kind("image")
class ImageKind(DataKind):
    """Images (C, H, W) in [-1, 1]: pictures are grids; inputs may also be image files or folders."""

    outputs = (".npz", ".png", "/")
    images = True
    metrics = ("features", "class_accuracy", "code_accuracy", "code_accuracy_real", "reconstruction", "anomaly",
               "editing", "ppl")

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        save_grid(path, fake, nrow=8, scale=max(1, 128 // fake.shape[-1]), **meta)

    def write_other(self, fmt: str, path: Path, x: Tensor, spec: dict, *, nrow: int | None,
                    cells: list[int] | None = None, meta: dict[str, Any],
                    items: list[dict[str, Any]] | None = None) -> None:
        if fmt == "/":
            save_images(path, x, items=items, **meta)
        else:
            save_grid(path, x, nrow=nrow or math.ceil(math.sqrt(len(x))), scale=max(1, 64 // x.shape[-1]),
                      cells=cells, **meta)

    def read_inputs(self, path: Path, spec: dict) -> Tensor:
        """An image file, a folder of images or an .npz, as (N, C, H, W) in [-1, 1] at the model's size."""
        channels, _, resolution = spec["shape"]
        if path.is_dir():
            files = list_images(path)
            if not files:
                raise UserError(f"{path} holds no image files", f"expected {', '.join(sorted(IMAGE_SUFFIXES))}")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            files = [path]
        else:
            x = super().read_inputs(path, spec)
            if tuple(x.shape[1:]) != tuple(spec["shape"]):
                wanted, dims = "×".join(map(str, spec["shape"])), ", ".join(map(str, spec["shape"]))
                raise UserError(f"{path}: its array of shape {tuple(x.shape)} holds no {wanted} images",
                                f"save the images as an array `samples` of shape (N, {dims}) in [-1, 1], or give "
                                "image files")
            low, high = float(x.min()), float(x.max())
            if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
                raise UserError(f"{path}: its images range over [{low:g}, {high:g}], and models read [-1, 1]",
                                "scale them first (8-bit pixels: x / 127.5 - 1), or give image files")
            return x
        try:
            pixels = np.stack([load_image(f, resolution, channels) for f in files])
            sizes = [_size(f) for f in files]
        except (OSError, ValueError, SyntaxError) as exc:
            raise UserError(f"{path}: cannot read an image ({exc})", "fix or remove the file") from None
        other = [(f, size) for f, size in zip(files, sizes) if size != (resolution, resolution)]
        if other:  # done as documented, but a 64×64 image shrunk for a 16×16 upscaler should not pass unseen
            (first, (w, h)), more = other[0], f" and {len(other) - 1} more" if len(other) > 1 else ""
            log.warning("%s (%dx%d)%s: resized (short side) and centre-cropped to the model's %dx%d", first, w, h,
                        more, resolution, resolution)
        return torch.from_numpy(pixels).float() / 127.5 - 1


@register_kind("pairs")
class PairKind(ImageKind):
    """Two image domains (gankit.data.pairs): models translate A to B; progress pictures show A | G(A) | true B."""

    fixed_count = 24  # eight rows of three (A, G(A), B) triplets
    usage = "gankit translate {run} IMAGES --out OUT/"
    metrics = ("translation", "super_resolution")

    def sampler(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device) -> BatchSampler:
        return PairSampler(dataset, batch_size, seed, device)

    def fixed_inputs(self, dataset: Dataset) -> Tensor:
        return dataset.take(torch.arange(min(self.fixed_count, len(dataset))))[0]

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        rows = torch.arange(len(fake))
        inputs = dataset.take(rows)[0]
        if inputs.shape[-1] != fake.shape[-1]:  # a low-resolution input, shown at the output's size
            inputs = torch.nn.functional.interpolate(inputs, size=fake.shape[-2:], mode="nearest")
        columns = [inputs, fake]
        if isinstance(dataset, PairDataset) and dataset.paired:  # the truth exists row for row only when paired
            columns.append(dataset.take_b(rows))
        grid = torch.stack(columns, dim=1).flatten(0, 1)
        save_grid(path, grid, nrow=3 * len(columns), scale=max(1, 64 // fake.shape[-1]), **meta)


@register_kind("captions")
class CaptionKind(ImageKind):
    """Images with captions (gankit.data.captions): models draw what a prompt says; progress pictures show one
    caption per row (PROGRESS_CAPTIONS, in order), eight noises across."""

    usage = 'gankit sample {run} --prompt "a blue circle in the centre" -n 16 --out blue.png'
    metrics = ("features", "attribute_accuracy")

    def sampler(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device) -> BatchSampler:
        return CaptionSampler(dataset, batch_size, seed, device)

    def fixed_inputs(self, dataset: Dataset) -> Tensor:
        per_row = self.fixed_count // len(PROGRESS_CAPTIONS)
        return tokenize(PROGRESS_CAPTIONS, dataset.info["text"]["vocab"]).repeat_interleave(per_row, dim=0)

    def read_prompt(self, prompts: list[str], spec: dict) -> Tensor:
        """Word ids (N, L) of prompts; an unknown word is a UserError listing the vocabulary."""
        return tokenize(prompts, spec["text"]["vocab"], spec["text"]["max_len"])

    def read_inputs(self, path: Path, spec: dict) -> Tensor:
        """Prompts from a text file (one per line, blank lines skipped) or word ids from an .npz."""
        if path.suffix.lower() == ".npz":
            return DataKind.read_inputs(self, path, spec).long()  # word ids, not images
        if path.suffix.lower() != ".txt":
            raise UserError(f"{path}: a text-to-image model reads prompts from a .txt file (one per line) or word ids "
                            "from an .npz", "write the prompts one per line in a .txt file, or use --prompt")
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read prompts ({exc})", "give a UTF-8 text file, one prompt per line")
        if not lines:
            raise UserError(f"{path} holds no prompts", "write one prompt per line")
        return self.read_prompt(lines, spec)

    def describe_inputs(self, inputs: Tensor, spec: dict) -> list[dict[str, Any]]:
        """Each sample's own provenance fields: the prompt behind its word ids."""
        return [{"prompt": text} for text in detokenize(inputs, spec["text"]["vocab"])]
