"""`gankit fid`: compare any two sample sets (image folders, .npz samples or statistics, runs), protocol beside
every number; also the distribution metrics (FID, KID, precision/recall, density/coverage) `gankit eval` shares."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..data import Dataset, npz_dataset
from ..data.folder import IMAGE_SUFFIXES, list_images, load_image
from ..errors import UserError
from ..io import to_uint8
from ..metrics import Evaluator, Extracted, FeatureStats, density_coverage, kid, load_evaluator, precision_recall
from ..train import Generator, load

MAX_SAMPLES = 10_000  # default sample count cap: FID is only comparable between equal counts, 10k is the usual one
SAMPLE_CHUNK = 1024  # samples generated per forward pass: Generator.sample's batch, so streamed samples equal its own
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
PR_K, DC_K = 3, 5  # the k of Kynkäänniemi et al. (precision/recall) and Naeem et al. (density/coverage)
SIDE_HINT = "give an image folder, a .npz of samples (or of statistics mu, sigma, n), or a run directory"
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def distribution_metrics(real: Extracted, fake: Extracted, *, with_kid: bool, with_prdc: bool,
                          seed: int) -> tuple[dict[str, float], dict[str, Any]]:
    """(values, their settings for the protocol): FID, plus KID and precision/recall/density/coverage when asked."""
    values = {"fid": real.stats.frechet_to(fake.stats)}
    settings: dict[str, Any] = {}
    if with_kid:
        n_real, n_fake = len(real.features), len(fake.features)  # the rows kept, which may be fewer than stats.n
        size = min(KID_SUBSET_SIZE, n_real, n_fake)  # papers' 1,000, or the smaller set when it is smaller
        subsets = 1 if size == n_real == n_fake else KID_SUBSETS  # subsets of whole sets would all be the same
        values["kid"], spread = kid(real.features, fake.features, subsets, size, seed=seed)
        if subsets > 1:  # a std over one estimate would look like a precise KID
            values["kid_std"] = spread
        settings["kid"] = {"subsets": subsets, "subset_size": size, "draw": "without replacement (torch-fidelity)",
                           "kernel": "(x.y/d + 1)^3", "seed": seed}
    if with_prdc:
        values["precision"], values["recall"] = precision_recall(real.features, fake.features, k=PR_K)
        values["density"], values["coverage"] = density_coverage(real.features, fake.features, k=DC_K)
        settings["prdc"] = {"precision_recall_k": PR_K, "density_coverage_k": DC_K}
    return values, settings


@dataclass
class _Side:
    """One operand of `gankit fid`: what it is (folder, samples, stats or run) and what reading it needs."""

    label: str  # "A" or "B"
    path: Path
    kind: str
    count: int  # images in the folder, rows of the array, n of the statistics; 0 for a run (generated on demand)
    shape: tuple[int, ...] | None = None  # one sample's shape, for arrays and runs
    files: list[Path] | None = None
    data: Dataset | None = None
    gen: Generator | None = None
    stats: FeatureStats | None = None
    rounded: bool = False  # a run's images were rounded to 8 bits before features

    @property
    def where(self) -> str:
        return f"{self.label} ({self.path})"


def _open_side(label: str, path: Path) -> _Side:
    """Classify one operand and read what is cheap to read (file list, arrays, statistics, generator)."""
    if not path.exists():
        raise UserError(f"{label}: {path} does not exist", hint=SIDE_HINT)
    if path.is_dir():
        if is_run_dir(path):
            gen = load(path)
            return _Side(label, path, "run", 0, tuple(gen.spec["shape"]), gen=gen)
        files = list_images(path)
        if not files:
            raise UserError(f"{label}: {path} holds no image files",
                            hint=f"expected {', '.join(sorted(IMAGE_SUFFIXES))} files, or {SIDE_HINT}")
        return _Side(label, path, "folder", len(files), files=files)
    if path.suffix.lower() != ".npz":
        raise UserError(f"{label}: {path} is neither a folder nor a .npz file", hint=SIDE_HINT)
    names = _npz_names(path)
    if {"mu", "sigma"} <= names:
        stats = FeatureStats.load(path)
        return _Side(label, path, "stats", stats.n, (stats.dim,), stats=stats)
    data = npz_dataset(str(path), "samples" if "samples" in names else None)
    return _Side(label, path, "samples", len(data), data.shape, data=data)


def _npz_names(path: Path) -> set[str]:
    """Array names of an .npz without reading the arrays; empty when unreadable (the loader then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except (OSError, zipfile.BadZipFile):
        return set()


def _folder_batches(side: _Side, evaluator: Evaluator, geometry: tuple[int | None, int]) -> Iterator[Tensor]:
    """The folder's images, converted for the extractor, `batch_size` at a time.

    `geometry` is (side, channels) to load at; side None keeps each image's own (square-cropped) size and lets the
    extractor resize it, so square images reach Inception exactly as pytorch-fid feeds them.
    """
    resolution, channels = geometry
    batch = []
    for path in side.files:
        try:
            with Image.open(path) as img:
                size = resolution or min(img.size)
            pixels = torch.tensor(load_image(path, size, channels))[None]  # (1, C, size, size) uint8
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise UserError(f"{side.where}: cannot read {path.name} ({err})", hint="fix or remove the file") from None
        batch.append(evaluator.prepare(pixels.float() / 127.5 - 1))
        if len(batch) == evaluator.batch_size:
            yield torch.cat(batch)
            batch = []
    if batch:
        yield torch.cat(batch)


def _geometry(evaluator: Evaluator, sides: list[_Side]) -> tuple[int | None, int]:
    """(side, channels) folders load at: the network's channels at native size, or for raw features the shape of
    the first array or run operand, else of the first folder's first image (raw pixels compare at one shape)."""
    folders = [side for side in sides if side.kind == "folder"]
    if evaluator.net is not None or not folders:
        return None, evaluator.channels
    for side in sides:
        if side.kind in ("samples", "run") and len(side.shape) == 3:
            return side.shape[-1], side.shape[0]
    with Image.open(folders[0].files[0]) as img:
        return min(img.size), 1 if img.mode in GREY_MODES else 3


def generated_batches(gen: Generator, n: int, seed: int, chunk: int | None = None,
                      part: tuple[int, int] | None = None) -> Iterator[Tensor]:
    """`gen.sample(n, seed=seed)` one forward pass of `chunk` (default SAMPLE_CHUNK) samples at a time, generated as
    they are consumed, so no more than `chunk` images are held (the latents, n × z_dim, are drawn up front);
    `part=(lo, hi)`: rows lo..hi-1 of them only."""
    return gen.generate_batches(gen.latents(n, seed), seed=seed, batch_size=chunk or SAMPLE_CHUNK, part=part)


def rebatch(chunks: Iterator[Tensor], size: int) -> Iterator[Tensor]:
    """Re-cut a stream of row blocks into blocks of exactly `size` rows (the last may be shorter): the blocks
    `torch.cat(chunks).split(size)` gives, holding at most size + one chunk rows at a time."""
    held: list[Tensor] = []
    rows = 0
    for chunk in chunks:
        held.append(chunk)
        rows += len(chunk)
        if rows >= size:
            joined = torch.cat(held)
            whole = rows // size * size
            yield from joined[:whole].split(size)
            held, rows = ([joined[whole:]], rows - whole) if rows > whole else ([], 0)
    if rows:
        yield torch.cat(held)


def round_to_8bit(images: Tensor) -> Tensor:
    """Images (N, C, H, W) in [-1, 1] as a PNG holds them: gankit.io.to_uint8's rounding, then back to [-1, 1] as the
    folder reader maps uint8, so generated images are measured as their saved files would be."""
    return torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _extract_side(side: _Side, evaluator: Evaluator, n: int, seed: int, keep: bool,
                  geometry: tuple[int | None, int], round_8bit: bool) -> Extracted:
    """Features (or the stored statistics) of one operand; a run generates n samples from `seed`, images rounded to
    8 bits when `round_8bit`."""
    if side.kind == "stats":
        return Extracted(side.stats)
    if side.kind == "run":
        side.count = n
        side.rounded = round_8bit and side.gen.data_kind.images
        batches = rebatch(generated_batches(side.gen, n, seed), evaluator.batch_size)
        if side.rounded:
            batches = map(round_to_8bit, batches)
    elif side.kind == "samples":
        batches = (side.data.take(rows)[0] for rows in torch.arange(side.count).split(evaluator.batch_size))
    else:
        batches = _folder_batches(side, evaluator, geometry)
    return evaluator.extract(batches, side.count, keep=keep, label=f"{side.label}: {side.path.name}")


def _describe(side: _Side, seed: int, geometry: tuple[int | None, int]) -> dict[str, Any]:
    """What an operand was and how it was read, for the protocol."""
    info: dict[str, Any] = {"path": str(side.path), "kind": side.kind, "samples": side.count}
    if side.kind == "folder":
        resolution, channels = geometry
        size = "own size" if resolution is None else f"{resolution}x{resolution} (PIL bicubic)"
        info["read"] = f"{channels} channel(s), square centre crop at {size}"
    elif side.kind == "run":
        info.update(seed=seed, step=side.gen.info.get("step"), weights=side.gen.info.get("weights"),
                    rounded_to_8bit=side.rounded)
    elif side.kind == "samples":
        info["key"] = side.data.info["key"]
    return info


def compare_sets(a: str | Path, b: str | Path, *, features: str = "inception", weights: str | Path | None = None,
                 with_kid: bool = False, with_prdc: bool = False, n: int | None = None, seed: int = 0,
                 round_8bit: bool = True) -> dict[str, Any]:
    """`gankit fid A B`: Fréchet distance (FID with Inception features), optionally KID and PRDC, and the protocol.

    A is the reference: precision is measured for B's samples against A's. A run generates `n` samples (default:
    the other operand's count, at most 10,000), its images rounded to 8 bits as saved files are unless `round_8bit`
    is False.
    """
    evaluator = load_evaluator(features, weights)
    sides = [_open_side("A", Path(a)), _open_side("B", Path(b))]
    for side in sides:
        if side.kind == "stats" and (with_kid or with_prdc):
            raise UserError(f"{side.where} holds statistics only (mu, sigma), but --kid and --prdc need the samples",
                            hint="pass a folder, a .npz of samples or a run instead, or drop --kid/--prdc")
        if side.kind == "stats" and evaluator.dim not in (None, side.stats.dim):
            raise UserError(f"{side.where} holds statistics of d={side.stats.dim} features, but the "
                            f"{evaluator.name} extractor gives d={evaluator.dim}",
                            hint="choose the --features the statistics were computed with")
    counts = [side.count for side in sides if side.kind != "run"]
    n = n or min([*counts, MAX_SAMPLES])
    geometry = _geometry(evaluator, sides)
    feats_a, feats_b = (_extract_side(side, evaluator, n, seed, with_kid or with_prdc, geometry, round_8bit)
                        for side in sides)
    if feats_a.stats.dim != feats_b.stats.dim:
        raise UserError(f"{sides[0].where} gives d={feats_a.stats.dim} features but {sides[1].where} gives "
                        f"d={feats_b.stats.dim}", hint="raw features compare only samples of one shape; use "
                        "--features digits or inception, which resize images")
    values, settings = distribution_metrics(feats_a, feats_b, with_kid=with_kid, with_prdc=with_prdc, seed=seed)
    protocol = {"extractor": evaluator.protocol(), "a": _describe(sides[0], seed, geometry),
                "b": _describe(sides[1], seed, geometry), "seed": seed, **settings}
    return {**values, "protocol": protocol}


def is_run_dir(path: Path) -> bool:
    """A directory written by `gankit train` (or an exported model folder)."""
    return (path / "config.yaml").is_file() or (path / "model" / "config.json").is_file() \
        or (path / "config.json").is_file() and (path / "model.safetensors").is_file()
