"""`gankit eval`, `gankit fid` and `gankit info`: measure runs and sample sets, the protocol beside every number."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..data import Dataset, load_dataset, npz_dataset, read_npz
from ..data.folder import IMAGE_SUFFIXES, list_images, load_image
from ..data.shapes import label_names
from ..errors import UserError
from ..io import atomic_path
from ..metrics import (Evaluator, Extracted, FeatureStats, density_coverage, inception_score, kid, load_evaluator,
                       precision_recall)
from ..metrics.modes2d import modes2d
from ..nets import count_parameters
from ..train import Generator, list_checkpoints, load

MAX_SAMPLES = 10_000  # default sample count cap: FID is only comparable between equal counts, 10k is the usual one
REFERENCE_SEED = 0  # picks the real subset when the data holds more than N samples; fixed, so the cache stays valid
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
PR_K, DC_K = 3, 5  # the k of Kynkäänniemi et al. (precision/recall) and Naeem et al. (density/coverage)
IS_SPLITS = 10
SIDE_HINT = "give an image folder, a .npz of samples (or of statistics mu, sigma, n), or a run directory"
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def evaluate_run(run_dir: str | Path, seed: int = 0, features: str | None = None, weights: str | Path | None = None,
                 n: int | None = None) -> dict[str, Any]:
    """Metrics for a run: the PacGAN mode protocol for toy 2D data, feature-distribution metrics otherwise."""
    gen = load(run_dir)
    spec = gen.spec
    if spec.get("centers") is not None:
        n = 2500
        samples = gen.sample(n, seed=seed)
        report = modes2d(samples, torch.tensor(spec["centers"]), spec["std"])
        return {"modes": report.modes, "hq_fraction": report.hq_fraction, "reverse_kl": report.reverse_kl,
                "total_modes": report.total_modes,
                "protocol": {"metric": "modes2d (PacGAN)", "samples": n, "threshold_std": 3.0, "seed": seed,
                             "weights": gen.info.get("weights"), "step": gen.info.get("step")}}
    name = features or default_features(gen.config.data.name)
    return _evaluate_samples(gen, Path(run_dir), load_evaluator(name, weights), seed, n)


def default_features(data_name: str) -> str:
    """The shipped evaluator trained on this data (digits, shapes), else raw pixels."""
    return data_name if data_name in ("digits", "shapes") else "raw"


def _evaluate_samples(gen: Generator, run_dir: Path, evaluator: Evaluator, seed: int, n: int | None) -> dict[str, Any]:
    """FID, KID, IS, precision/recall and density/coverage of generated samples against the training data."""
    real_data = load_dataset(gen.config.data, gen.config.seed)
    n_real = min(len(real_data), MAX_SAMPLES)
    n_fake = n or n_real
    index = torch.randperm(len(real_data), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n_real].sort()[0]
    reference = {"data": gen.config.data.name, "path": gen.config.data.path, "shape": list(real_data.shape),
                 "samples": n_real, "subset_seed": REFERENCE_SEED, "cache": f"reference-{evaluator.name}.npz"}
    real = _reference_features(run_dir / reference["cache"], evaluator, real_data, index, reference)
    fake = evaluator.extract(gen.sample(n_fake, seed=seed).split(evaluator.batch_size), n_fake, keep=True,
                             keep_logits=True, label="generated")
    values, settings = _distribution_metrics(real, fake, with_kid=True, with_prdc=True, seed=seed)
    if fake.logits is not None:
        splits = min(IS_SPLITS, n_fake)
        values["is"], values["is_std"] = inception_score(fake.logits, splits=splits)
        settings["is"] = {"splits": splits, "classifier": evaluator.name}
    class_acc = class_accuracy(gen, evaluator, seed)
    if class_acc is not None:
        values["class_accuracy"] = class_acc
        settings["class_accuracy"] = {"per_class": CLASS_SAMPLES, "classifier": evaluator.name, "seed": seed}
    code_acc = code_accuracy(gen, evaluator, seed)
    if code_acc is not None:
        values["code_accuracy"], settings["code_accuracy"] = code_acc
    generated = {"samples": n_fake, "seed": seed, "weights": gen.info.get("weights"), "step": gen.info.get("step")}
    return {**values, "protocol": {"extractor": evaluator.protocol(), "generated": generated, "reference": reference,
                                   **settings}}


# How an evaluator names its prediction for samples of a dataset, in that dataset's class names.
CLASS_PREDICTORS: dict[str, Callable[[Evaluator, Tensor, Any], list[str]]] = {
    "digits": lambda ev, x, data_cfg: [str(i) for i in ev.logits(x).argmax(1).tolist()],
    "shapes": lambda ev, x, data_cfg: label_names(ev.classify(x, data_cfg.label), data_cfg.label),
}
CLASS_SAMPLES = 100  # generated samples per class for class_accuracy


@torch.no_grad()
def class_accuracy(gen: Generator, evaluator: Evaluator, seed: int = 0) -> float | None:
    """Share of class-conditional samples that the evaluator recognises as the class asked for (None if n/a)."""
    predict = CLASS_PREDICTORS.get(evaluator.name)
    if not gen.class_names or predict is None:
        return None
    labels = torch.arange(len(gen.class_names)).repeat_interleave(CLASS_SAMPLES)
    predicted = []
    for part in labels.split(1000):
        predicted += predict(evaluator, gen.sample(len(part), seed=seed + len(predicted), labels=part), gen.config.data)
    return sum(p == gen.class_names[i] for p, i in zip(predicted, labels.tolist())) / len(labels)


CODE_SAMPLES = 100  # generated samples per value of InfoGAN's categorical code c0 for code_accuracy


def matched_accuracy(confusion: np.ndarray) -> tuple[float, list[int]]:
    """Accuracy under the best one-to-one matching of rows (code values) to columns (classes) of a count matrix,
    and each row's matched column (-1 when there are more rows than columns): the Hungarian method."""
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    mapping = [-1] * confusion.shape[0]
    for row, col in zip(rows.tolist(), cols.tolist()):
        mapping[row] = col
    return float(confusion[rows, cols].sum() / confusion.sum()), mapping


@torch.no_grad()
def code_accuracy(gen: Generator, evaluator: Evaluator, seed: int = 0) -> tuple[float, dict[str, Any]] | None:
    """How well InfoGAN's categorical code c0 found the classes without labels: (accuracy, protocol), None if n/a.

    CODE_SAMPLES samples per value of c0 (z and the other codes random) are classified by the evaluator; the accuracy
    is that of the best one-to-one matching of c0 values to classes, as for unsupervised clustering.
    """
    predict = CLASS_PREDICTORS.get(evaluator.name)
    try:
        values = gen.variant.code_values("c0")
    except ValueError:
        return None
    if predict is None:
        return None
    z = gen.latents(len(values) * CODE_SAMPLES, seed).split(CODE_SAMPLES)
    predicted = [predict(evaluator, gen.generate(part, codes={"c0": v}, seed=seed + 1 + i), gen.config.data)
                 for i, (part, v) in enumerate(zip(z, values))]
    classes = list(gen.spec.get("class_names") or [])
    classes += sorted({p for row in predicted for p in row} - set(classes))
    confusion = np.zeros((len(values), len(classes)), dtype=np.int64)  # (c0 value, predicted class) counts
    for i, row in enumerate(predicted):
        for p in row:
            confusion[i, classes.index(p)] += 1
    accuracy, mapping = matched_accuracy(confusion)
    return accuracy, {"code": "c0", "per_value": CODE_SAMPLES, "classifier": evaluator.name, "seed": seed,
                      "other_codes_and_z": "random", "matching": "one-to-one, maximising matched samples (Hungarian "
                      "method, scipy.optimize.linear_sum_assignment)",
                      "mapping": {f"c0={v:g}": classes[c] if c >= 0 else None for v, c in zip(values, mapping)},
                      "classes": classes, "confusion": confusion.tolist()}


def _reference_features(cache: Path, evaluator: Evaluator, data: Dataset, index: Tensor,
                        reference: dict[str, Any]) -> Extracted:
    """Features of the real subset, read from `cache` when it was written under the same protocol, else computed.

    The cache also holds mu, sigma and n, so it doubles as a statistics file for `gankit fid`.
    """
    key = json.dumps({"extractor": evaluator.protocol(), "reference": reference}, sort_keys=True)
    try:
        arrays = read_npz(cache) if cache.is_file() else {}
    except UserError:
        arrays = {}  # unreadable cache: recompute and replace it
    hit = "features" in arrays and "key" in arrays and str(arrays["key"]) == key
    if hit:
        feats = torch.from_numpy(arrays["features"])
    else:
        batches = (data.take(rows)[0] for rows in index.split(evaluator.batch_size))
        feats = evaluator.extract(batches, len(index), keep=True, label="reference").features
    stats = FeatureStats()
    stats.update(feats)  # one update from the float32 features either way, so a cache hit gives identical numbers
    if not hit:
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, features=feats.numpy(), mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n), key=np.array(key))
    return Extracted(stats, feats)


def _distribution_metrics(real: Extracted, fake: Extracted, *, with_kid: bool, with_prdc: bool,
                          seed: int) -> tuple[dict[str, float], dict[str, Any]]:
    """(values, their settings for the protocol): FID, plus KID and precision/recall/density/coverage when asked."""
    values = {"fid": real.stats.frechet_to(fake.stats)}
    settings: dict[str, Any] = {}
    if with_kid:
        size = min(KID_SUBSET_SIZE, real.stats.n, fake.stats.n)
        values["kid"], values["kid_std"] = kid(real.features, fake.features, KID_SUBSETS, size, seed=seed)
        settings["kid"] = {"subsets": KID_SUBSETS, "subset_size": size, "kernel": "(x.y/d + 1)^3", "seed": seed}
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

    @property
    def where(self) -> str:
        return f"{self.label} ({self.path})"


def _is_run_dir(path: Path) -> bool:
    """A directory written by `gankit train`."""
    return (path / "config.yaml").is_file() or (path / "model" / "config.json").is_file()


def _open_side(label: str, path: Path) -> _Side:
    """Classify one operand and read what is cheap to read (file list, arrays, statistics, generator)."""
    if not path.exists():
        raise UserError(f"{label}: {path} does not exist", hint=SIDE_HINT)
    if path.is_dir():
        if _is_run_dir(path):
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


def _extract_side(side: _Side, evaluator: Evaluator, n: int, seed: int, keep: bool,
                  geometry: tuple[int | None, int]) -> Extracted:
    """Features (or the stored statistics) of one operand; a run generates n samples from `seed`."""
    if side.kind == "stats":
        return Extracted(side.stats)
    if side.kind == "run":
        side.count = n
        batches = side.gen.sample(n, seed=seed).split(evaluator.batch_size)
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
        info.update(seed=seed, step=side.gen.info.get("step"), weights=side.gen.info.get("weights"))
    elif side.kind == "samples":
        info["key"] = side.data.info["key"]
    return info


def compare_sets(a: str | Path, b: str | Path, *, features: str = "inception", weights: str | Path | None = None,
                 with_kid: bool = False, with_prdc: bool = False, n: int | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """`gankit fid A B`: Fréchet distance (FID with Inception features), optionally KID and PRDC, and the protocol.

    A is the reference: precision is measured for B's samples against A's. A run generates `n` samples (default:
    the other operand's count, at most 10,000).
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
    feats_a, feats_b = (_extract_side(side, evaluator, n, seed, with_kid or with_prdc, geometry) for side in sides)
    if feats_a.stats.dim != feats_b.stats.dim:
        raise UserError(f"{sides[0].where} gives d={feats_a.stats.dim} features but {sides[1].where} gives "
                        f"d={feats_b.stats.dim}", hint="raw features compare only samples of one shape; use "
                        "--features digits or inception, which resize images")
    values, settings = _distribution_metrics(feats_a, feats_b, with_kid=with_kid, with_prdc=with_prdc, seed=seed)
    protocol = {"extractor": evaluator.protocol(), "a": _describe(sides[0], seed, geometry),
                "b": _describe(sides[1], seed, geometry), "seed": seed, **settings}
    return {**values, "protocol": protocol}


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Config, steps and parameter counts of a run, from its files alone."""
    run_dir = Path(run_dir)
    gen = load(run_dir)
    checkpoints = [p.name for p in list_checkpoints(run_dir)]
    g_params = sum(count_parameters(getattr(gen.variant, n)) for n in gen.variant.generator_names)
    metrics_path = run_dir / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    except ValueError:
        raise UserError(f"{metrics_path} is not valid JSON", "re-run `gankit eval`") from None
    return {"run": str(run_dir), "step": gen.info.get("step"), "target_steps": gen.config.train.steps,
            "checkpoints": checkpoints, "data": gen.spec.get("name"), "kind": gen.kind,
            "shape": gen.spec.get("shape"), "variant": gen.config.variant, "model": gen.config.model.name,
            "loss": gen.config.loss.name, "parameters": gen.info.get("parameters", {"G": g_params}),
            "weights": gen.info.get("weights"), "metrics": metrics, "config": gen.config.model_dump(mode="json")}
