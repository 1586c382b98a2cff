"""Editing with a trained noise-to-image generator: inversion (image -> latent), latent directions, edits.

    gen = gankit.load("runs/shapes")
    inv = invert(gen, images)                          # z (and class) whose G(z) redraws each image; inv.psnr
    found = directions(gen, load_evaluator("shapes"))  # "red", "star", ... (InterFaceGAN) and "sefa0", ... (SeFa)
    edited = gen.generate(edit(inv.z, found, {"red": 3.0}), labels=inv.labels)

Inversion starts from the best of a pool of random latents (the same pool for every image, so it costs one batch of
G) and refines z by Adam on the pixel error, as GAN-inversion papers' optimisation baseline does. Attribute
directions are the unit normals of linear boundaries in z (logistic regression on what the evaluator sees in G's
samples; InterFaceGAN, Shen et al. 2020); an edit of one attribute is made orthogonal to the boundaries of the others,
InterFaceGAN's conditional manipulation, so they hold. SeFa (Shen & Zhou 2021) needs no evaluator: the top
eigenvectors of AᵀA for G's first layer A are the directions that change its output most.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import UserError
from .io import atomic_path, latents_label, write_json
from .data import read_npz
from .data.npz import refuse_non_finite
from .metrics import Evaluator, load_evaluator
from .nets import DCGANEncoder
from .train import Generator
from .train.checkpoint import load_tensors, save_tensors
from .variants import Request

log = logging.getLogger(__name__)

POOL = 256  # random latents (per class for class-conditional models) an inversion starts from the best of
STEPS = 300  # Adam steps refining each inversion
LR = 0.05
FIT_SAMPLES = 4000  # generated samples the attribute boundaries are fitted on (a fifth held out for their accuracy)
MIN_POSITIVES = 20  # an attribute value seen fewer times in those samples gets no direction
SEFA_DIRECTIONS = 5  # closed-form directions listed (and as many GANSpace ones)
GANSPACE_SAMPLES = 1000  # samples whose first activations GANSpace's PCA runs on
EDIT_MARGIN = 1.0  # edit success: each edit ends this far (in z units) past the target's boundary
MAX_AMOUNT = 6.0  # ... moving at most this far along the direction
ENCODER_STEPS = 2000  # Adam steps of the optional encoder, on batches of G's own samples
ENCODER_WIDTH = 32
DIRECTIONS_SCHEMA = 2  # what a saved directions.json holds; older ones are found again (2: GANSpace added)
CACHE = "edit"  # RUN/edit/: directions.{safetensors,json}, encoder.{safetensors,json}


@dataclass
class Inversion:
    """Latents that redraw given images: z (N, z_dim), the class of each (class-conditional models; else None),
    the redrawn images and their PSNR to the inputs (dB), at the start (best of the pool) and after refinement."""

    z: Tensor
    labels: Tensor | None
    images: Tensor
    psnr: Tensor
    psnr_start: Tensor


@dataclass
class Direction:
    """A unit vector in z: `method` "interfacegan" (the boundary `normal`·z + `bias` = 0 of `attribute` = `value`,
    `accuracy` its balanced accuracy on held-out samples) or "sefa" (`value` its eigenvalue's share)."""

    name: str
    vector: Tensor
    method: str
    attribute: str | None = None
    value: str | None = None
    bias: float = 0.0
    accuracy: float | None = None

    def distance(self, z: Tensor) -> Tensor:
        """Signed distance of each z (N, z_dim) to this direction's boundary (InterFaceGAN directions)."""
        return z @ self.vector.to(z) + self.bias


@dataclass
class Directions:
    """Named latent directions of one generator, and how they were found (`protocol`)."""

    items: dict[str, Direction]
    protocol: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Direction:
        if name not in self.items:
            raise UserError(f"unknown direction '{name}'", f"this model has: {', '.join(self.items) or 'none'} "
                            "(`gankit directions RUN` lists them)")
        return self.items[name]

    def held(self, name: str) -> Tensor:
        """The direction of `name`, made orthogonal to the boundaries of every other attribute (InterFaceGAN's
        conditional manipulation), so that moving along it leaves what they separate in place."""
        d = self[name]
        if d.attribute is None:
            return d.vector
        others = [o.vector for o in self.items.values() if o.attribute not in (None, d.attribute)]
        if not others:
            return d.vector
        basis = torch.linalg.qr(torch.stack(others, dim=1)).Q  # (z_dim, k) orthonormal
        v = d.vector - basis @ (basis.T @ d.vector)
        return v / v.norm().clamp_min(1e-8)


def _pick_labels(gen: Generator, labels: Tensor | None, n: int) -> Tensor | None:
    if not gen.class_names:
        if labels is not None:
            raise UserError("this model is not class-conditional: it takes no class", "invert without --class")
        return None
    return None if labels is None else gen.label_indices(labels, n)


def check_invertible(gen: Generator) -> None:
    """A clear error for models inversion cannot serve: only noise-to-image generators (with classes or not)."""
    if "inputs" in gen.sampling:
        raise UserError("this model transforms images it is given: it has no latent to invert",
                        "use `gankit translate` / `gankit upscale` with it")
    if gen.kind != "image" or len(gen.spec["shape"]) != 3:
        raise UserError(f"inversion, latent directions and edits need a model of images; this one makes {gen.kind} "
                        "samples",
                        "give the run of an image GAN (dcgan, biggan, cgan, ...)")
    if "codes" in gen.sampling:
        raise UserError("inversion optimises z only, and this model also takes latent codes (InfoGAN)",
                        "invert a model without codes (dcgan, biggan, cgan)")


def _forward(gen: Generator, z: Tensor, labels: Tensor | None) -> Tensor:
    """G(z, labels) with gradients (Generator.generate runs without them)."""
    return gen.variant.generate(Request(len(z), z=z, labels=labels))


def _forward_hooked(gen: Generator, z: Tensor, labels: Tensor | None, handles: list) -> None:
    """G(z, labels) without gradients, for its forward hooks; the hooks are removed afterwards whatever happens."""
    try:
        with torch.no_grad():
            _forward(gen, z.to(gen.device), None if labels is None else labels.to(gen.device))
    finally:
        for h in handles:
            h.remove()


def optimizer_step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    """One step of `opt` on `loss` (the small fits here: inversion, encoders)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def psnr_of(x: Tensor, y: Tensor) -> Tensor:
    """PSNR (dB) of each image pair, for images in [-1, 1] (peak-to-peak 2)."""
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4 / mse)


def invert(gen: Generator, images: Tensor, labels: Tensor | None = None, *, steps: int = STEPS, lr: float = LR,
           pool: int = POOL, seed: int = 0, batch_size: int = 64, encoder: nn.Module | None = None,
           advance: Callable[[int], None] | None = None) -> Inversion:
    """Latents whose G(z) redraws `images` (N, C, H, W) in [-1, 1] at the model's size: the best of `pool` random
    latents (with every class, for class-conditional models, unless `labels` fix them) or, where it redraws the image
    better, an `encoder`'s guess (train_encoder), refined by `steps` of Adam on the mean squared pixel error.
    Deterministic for a seed; `advance(k)` reports images done."""
    check_invertible(gen)
    shape = tuple(gen.spec["shape"])
    if tuple(images.shape[1:]) != shape:
        raise UserError(f"images are {tuple(images.shape[1:])}, the model makes {shape}",
                        "read them with the model's data kind (it resizes), or resize them first")
    fixed = _pick_labels(gen, labels, len(images))
    with frozen(gen.variant):
        return _invert(gen, images, fixed, steps, lr, pool, seed, batch_size, encoder, advance)


def _invert(gen: Generator, images: Tensor, fixed: Tensor | None, steps: int, lr: float, pool: int, seed: int,
            batch_size: int, encoder: nn.Module | None, advance: Callable[[int], None] | None) -> Inversion:
    gen_rng = torch.Generator().manual_seed(seed)
    zs, ys, outs, start, end = [], [], [], [], []
    for first in range(0, len(images), batch_size):
        x = images[first : first + batch_size].to(gen.device, torch.float32)
        y = None if fixed is None else fixed[first : first + len(x)].to(gen.device)
        z0, y0, best = _best_of_pool(gen, x, y, pool, gen_rng)
        if encoder is not None:
            z0, best = _better_guess(gen, x, y0, z0, best, encoder)
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            optimizer_step(opt, (_forward(gen, z, y0) - x).pow(2).flatten(1).mean(1).sum())
        with torch.no_grad():
            out = _forward(gen, z, y0)
        zs.append(z.detach().cpu())
        ys.append(None if y0 is None else y0.cpu())
        outs.append(out.cpu())
        start.append(best.cpu())
        end.append(psnr_of(out, x).cpu())
        if advance is not None:
            advance(len(x))
    return Inversion(torch.cat(zs), None if ys[0] is None else torch.cat(ys), torch.cat(outs), torch.cat(end),
                     torch.cat(start))


@torch.no_grad()
def _best_of_pool(gen: Generator, x: Tensor, labels: Tensor | None, pool: int,
                  rng: torch.Generator) -> tuple[Tensor, Tensor | None, Tensor]:
    """For each image, the pool latent (and class) whose sample is nearest in pixels: (z, labels, PSNR)."""
    z = gen.variant.noise(pool, generator=rng).cpu()
    flat = x.flatten(1).cpu()
    if not gen.class_names:
        classes: list[int | None] = [None]
    else:
        classes = sorted(set(labels.tolist())) if labels is not None else list(range(len(gen.class_names)))
    best_err = torch.full((len(x),), math.inf)
    best_z = torch.zeros(len(x), z.shape[1])
    best_y = torch.zeros(len(x), dtype=torch.long)
    for c in classes:
        cand = gen.generate(z, labels=None if c is None else torch.full((pool,), c, dtype=torch.long))
        err = torch.cdist(flat, cand.flatten(1)).pow(2) / flat.shape[1]  # (N, pool) mean squared error
        if labels is not None:
            err[labels.cpu() != c] = math.inf
        e, j = err.min(1)
        better = e < best_err
        best_err[better], best_z[better] = e[better], z[j[better]]
        if c is not None:
            best_y[better] = c
    y = best_y.to(x.device) if gen.class_names else None
    return best_z.to(x.device), y, 10 * torch.log10(4 / best_err.clamp_min(1e-10))


@torch.no_grad()
def _better_guess(gen: Generator, x: Tensor, labels: Tensor | None, z: Tensor, psnr: Tensor,
                  encoder: nn.Module) -> tuple[Tensor, Tensor]:
    """Per image, the encoder's latent where G redraws the image better from it than from the pool's best."""
    guess = encoder(x).to(z)
    score = psnr_of(gen.generate(guess, labels=labels).to(x.device), x).to(psnr)
    better = score > psnr
    return torch.where(better[:, None], guess, z), torch.where(better, score, psnr)


def train_encoder(gen: Generator, steps: int | None = None, batch_size: int = 64, seed: int = 0,
                  width: int = ENCODER_WIDTH, advance: Callable[[int], None] | None = None) -> tuple[nn.Module, dict]:
    """A DCGAN encoder E trained to give back z from G(z) (mean squared error in z, on fresh samples each step):
    a starting guess for inversion. Returns E (in eval mode) and what it was trained on."""
    steps = ENCODER_STEPS if steps is None else steps
    channels, side, _ = gen.spec["shape"]
    try:
        encoder = DCGANEncoder(channels, side, gen.variant.z_dim, width).to(gen.device)
    except ValueError as exc:
        raise UserError(f"no encoder for this model: {exc}", "invert without --encoder") from None
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    encoder.apply(lambda m: nn.init.kaiming_normal_(m.weight, 0.2) if isinstance(m, nn.Conv2d) else None)
    opt = torch.optim.Adam(encoder.parameters(), lr=2e-4, betas=(0.5, 0.999))
    classes = len(gen.class_names or [])
    loss = torch.zeros(())
    for _ in range(steps):
        z = gen.variant.noise(batch_size, generator=rng).cpu()
        labels = torch.randint(classes, (batch_size,), generator=rng) if classes else None
        x = gen.generate(z, labels=labels).to(gen.device)
        loss = (encoder(x) - z.to(gen.device)).pow(2).mean()
        optimizer_step(opt, loss)
        if advance is not None:
            advance(1)
    return encoder.eval(), {"steps": steps, "batch_size": batch_size, "width": width, "seed": seed,
                            "final_latent_mse": round(float(loss.detach()), 5),
                            "objective": "mean squared error in z on G's own samples"}


def run_encoder(gen: Generator, run_dir: Path, advance: Callable[[int], None] | None = None) -> nn.Module:
    """The run's encoder: read from RUN/edit/ when it was trained for these weights, else trained and saved."""
    channels, side, _ = gen.spec["shape"]
    return cached_module(run_dir / CACHE / "encoder", {"fingerprint": gen.weights_sha256()},
                         lambda meta: DCGANEncoder(channels, side, gen.variant.z_dim, meta.get("width", ENCODER_WIDTH)),
                         lambda: train_encoder(gen, advance=advance)).to(gen.device).eval()


def cached_module(stem: Path, key: dict[str, Any], build: Callable[[dict], nn.Module],
                  train: Callable[[], tuple[nn.Module, dict]]) -> nn.Module:
    """A trained module kept as STEM.safetensors + STEM.json: loaded when the JSON holds `key` (the weights it was
    trained for, its settings), else trained, saved and returned. `build(meta)` makes the empty module."""
    import json

    meta_path, tensor_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except ValueError:
        meta = {}
    if all(meta.get(k) == v for k, v in key.items()) and tensor_path.is_file():
        module = build(meta)
        module.load_state_dict(load_tensors(tensor_path))
        return module
    module, info = train()
    with _kept_if_possible("trains it"):
        with atomic_path(tensor_path) as tmp:
            save_tensors(tmp, module.state_dict())
        write_json(meta_path, {**info, **key})
    return module


@contextmanager
def _kept_if_possible(again: str) -> Iterator[None]:
    """Writing a cache into the run: where it cannot be written (a read-only run) what was computed is still good,
    only not kept, and a warning says the next command `again` (e.g. "trains it") again."""
    try:
        yield
    except UserError as exc:
        log.warning("%s; not kept, so the next command %s again", exc.message, again)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients inside the block (inversion differentiates z only); the flags come back after."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


# ------------------------------------------------------------------------------------------------------ directions


def directions(gen: Generator, evaluator: Evaluator | None, *, n: int = FIT_SAMPLES, seed: int = 0,
               sefa: int = SEFA_DIRECTIONS, ganspace: int = SEFA_DIRECTIONS) -> Directions:
    """Attribute directions from what `evaluator` sees in n samples (none when it names nothing, or is None),
    `sefa` closed-form directions of G's first layer and `ganspace` principal directions of its first activations."""
    check_invertible(gen)
    items: dict[str, Direction] = {}
    protocol: dict[str, Any] = {"seed": seed}
    if evaluator is not None and evaluator.attributes:
        found, fit = _interfacegan(gen, evaluator, n, seed)
        items.update(found)
        protocol["interfacegan"] = fit
    if sefa:
        try:
            found, fit = _sefa(gen, sefa)
            items.update(found)
        except UserError as exc:  # e.g. z is pixel-normalised before G's first layer (PGGAN, StyleGAN)
            fit = {"skipped": exc.message}
        protocol["sefa"] = fit
    if ganspace:
        found, fit = _ganspace(gen, ganspace, GANSPACE_SAMPLES, seed)
        items.update(found)
        protocol["ganspace"] = fit
    return Directions(items, protocol)


def _interfacegan(gen: Generator, evaluator: Evaluator, n: int, seed: int) -> tuple[dict[str, Direction], dict]:
    """One boundary per attribute value (that value vs the rest) by balanced logistic regression on z."""
    z = gen.latents(n, seed)
    labels = None
    if gen.class_names:  # classes stay random: boundaries are fitted in z, whatever the class
        labels = torch.randint(len(gen.class_names), (n,), generator=torch.Generator().manual_seed(seed + 1))
    x = gen.generate(z, labels=labels)
    z = z.cpu()
    split = n * 4 // 5
    items, skipped = {}, []
    for attribute, values in evaluator.attributes.items():
        if attribute in conditioned_on(gen):
            continue
        seen = evaluator.classify(x, attribute).cpu()
        for index, value in enumerate(values):
            target = (seen == index).float()
            if min(int(target[:split].sum()), int((1 - target[:split]).sum())) < MIN_POSITIVES:
                skipped.append(value)
                continue
            w, b = _logistic(z[:split], target[:split])
            norm = float(w.norm())
            scores = z[split:] @ w + b
            accuracy = _balanced_accuracy(scores > 0, target[split:] > 0)
            name = value if value not in items else f"{attribute}={value}"
            items[name] = Direction(name, w / norm, "interfacegan", attribute, value, float(b) / norm, accuracy)
    fit = {"samples": n, "heldout": n - split, "evaluator": evaluator.name, "skipped": skipped,
           "conditioned_on": sorted(conditioned_on(gen)),
           "rule": f"logistic regression of 'value vs rest' on z, balanced; a value seen fewer than {MIN_POSITIVES} "
                   "times gets no direction"}
    return items, fit


def conditioned_on(gen: Generator) -> set[str]:
    """Evaluator attributes a class-conditional model's classes stand for ("shape_color" labels: shape and color):
    the class changes them, so they get no direction in z."""
    label = gen.spec.get("evaluator", {}).get("label") if gen.class_names else None
    return set(label.split("_")) if label else set()


def _logistic(z: Tensor, target: Tensor, weight_decay: float = 1e-3, steps: int = 200) -> tuple[Tensor, Tensor]:
    """Weights (z_dim,) and bias of a class-balanced L2-regularised logistic regression, by L-BFGS."""
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    pos = target.mean().clamp(1e-3, 1 - 1e-3)
    weights = torch.where(target > 0, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(z @ w + b, target, reduction="none") * weights).mean()
        loss = loss + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _balanced_accuracy(predicted: Tensor, truth: Tensor) -> float:
    rates = [float((predicted[truth == t] == t).float().mean()) for t in (True, False) if (truth == t).any()]
    return sum(rates) / len(rates)


def first_layer(gen: Generator) -> Tensor:
    """A (out, z_dim): the affine map from z to the output of G's first layer with weights, read off by probing it
    with the unit vectors (so any layout of z — reshaped, concatenated with a class embedding, split — works)."""
    modules = [m for top in gen.variant.generator_modules() for m in top.modules()
               if next(m.parameters(recurse=False), None) is not None]
    seen: list[Tensor] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        if not seen and args and torch.is_floating_point(args[0]):
            seen.append(output.detach().flatten(1))

    handles = [m.register_forward_hook(hook) for m in modules]
    dim = gen.variant.z_dim
    probe = torch.cat([torch.zeros(1, dim), torch.eye(dim), 2 * torch.eye(dim)[:1]])
    labels = torch.zeros(len(probe), dtype=torch.long) if gen.class_names else None
    _forward_hooked(gen, probe, labels, handles)
    if not seen:
        raise UserError("found no layer with weights that reads z in this generator", "SeFa needs one")
    out = seen[0].cpu()
    a = (out[1 : dim + 1] - out[0]).T  # (out, z_dim)
    if not torch.allclose(out[-1] - out[0], 2 * a[:, 0], rtol=1e-3, atol=1e-4):
        raise UserError("G's first layer with weights is not linear in z, so SeFa does not apply",
                        "use attribute directions (an evaluator that knows the data)")
    return a


def _sefa(gen: Generator, k: int) -> tuple[dict[str, Direction], dict]:
    """The top-k eigenvectors of AᵀA (A: G's first layer on z), by eigenvalue; sign chosen so the largest entry is
    positive (eigenvectors have no sign of their own)."""
    a = first_layer(gen).double()
    values, vectors = torch.linalg.eigh(a.T @ a)  # ascending
    values, vectors = values.flip(0), vectors.flip(1)
    share = values / values.sum()
    items = {}
    for i in range(min(k, len(values))):
        v = vectors[:, i].float()
        v = v * torch.sign(v[v.abs().argmax()])
        items[f"sefa{i}"] = Direction(f"sefa{i}", v, "sefa", value=f"{float(share[i]):.3f}")
    return items, {"layer_outputs": a.shape[0], "eigenvalue_share": [round(float(s), 4) for s in share[:k]]}


NONLINEAR = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh)


def _ganspace(gen: Generator, k: int, n: int, seed: int) -> tuple[dict[str, Direction], dict | str]:
    """GANSpace (Härkönen et al. 2020): PCA of G's activations after its first nonlinearity over n samples, each
    principal component carried back to z by least squares (z ≈ coordinates · U); `pca0` explains the most."""
    modules = [m for top in gen.variant.generator_modules() for m in top.modules()]
    seen: list[Tensor] = []
    layers = [m for m in modules if isinstance(m, NONLINEAR)]
    if layers:  # the output of the first nonlinearity module
        handles = [m.register_forward_hook(lambda module, args, out: seen.append(out.detach().flatten(1).cpu())
                                           if not seen else None) for m in layers]
    else:  # nets that call F.relu: the input of the first convolution, which follows one (BigGAN's blocks)
        handles = [m.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().flatten(1).cpu())
                                           if not seen else None) for m in modules if isinstance(m, nn.Conv2d)]
    z = gen.latents(n, seed).cpu()
    labels = torch.randint(len(gen.class_names), (n,), generator=torch.Generator().manual_seed(seed + 2)) \
        if gen.class_names else None
    _forward_hooked(gen, z, labels, handles)
    if not seen:
        return {}, "none: found no nonlinearity module and no convolution in this generator"
    y = seen[0].double()
    y = y - y.mean(0)
    _, s, v = torch.linalg.svd(y, full_matrices=False)
    k = min(k, len(s))
    coords = y @ v[:k].T  # (n, k)
    basis = torch.linalg.lstsq(coords, z.double()).solution  # (k, z_dim): z ≈ coords · basis
    share = s.pow(2) / s.pow(2).sum()
    items = {}
    for i in range(k):
        u = basis[i] / basis[i].norm().clamp_min(1e-12)
        u = (u * torch.sign(u[u.abs().argmax()])).float()
        items[f"pca{i}"] = Direction(f"pca{i}", u, "ganspace", value=f"{float(share[i]):.3f}")
    return items, {"samples": n, "layer_features": y.shape[1], "variance_share": [round(float(x), 4)
                                                                                  for x in share[:k]]}


def save_directions(path: Path, found: Directions, weights_sha: str) -> None:
    """RUN/edit/directions.safetensors (the vectors) + directions.json (the rest, and the weights' fingerprint)."""
    with atomic_path(path / "directions.safetensors") as tmp:  # makes RUN/edit/, or says it cannot
        save_tensors(tmp, {name: d.vector for name, d in found.items.items()})
    meta = {name: {k: getattr(d, k) for k in ("method", "attribute", "value", "bias", "accuracy")}
            for name, d in found.items.items()}
    write_json(path / "directions.json", {"fingerprint": weights_sha, "schema": DIRECTIONS_SCHEMA, "directions": meta,
                                          "protocol": found.protocol})


def load_directions(path: Path, weights_sha: str) -> Directions | None:
    """The directions saved for the generator with this fingerprint, or None (none saved, or another G's)."""
    import json

    meta_path, tensor_path = path / "directions.json", path / "directions.safetensors"
    if not meta_path.is_file() or not tensor_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") != weights_sha or meta.get("schema") != DIRECTIONS_SCHEMA:
            return None
        vectors = load_tensors(tensor_path)
        items = {name: Direction(name, vectors[name], **info) for name, info in meta["directions"].items()}
        return Directions(items, meta.get("protocol", {}))
    except (ValueError, TypeError, AttributeError, KeyError, UserError) as exc:  # damaged or edited: found again
        log.warning("%s/ holds unreadable directions (%s: %s); finding them again", path, type(exc).__name__,
                    getattr(exc, "message", exc))
        return None


def run_directions(gen: Generator, run_dir: Path, evaluator: Evaluator | None, refit: bool = False) -> Directions:
    """The run's directions: read from RUN/edit/ when they were found for these weights, else found and saved."""
    weights_sha = gen.weights_sha256()
    found = None if refit else load_directions(run_dir / CACHE, weights_sha)
    if found is None:
        found = directions(gen, evaluator)
        with _kept_if_possible("finds them"):
            save_directions(run_dir / CACHE, found, weights_sha)
    return found


def evaluator_for(gen: Generator) -> Evaluator | None:
    """The shipped evaluator that knows the model's data (it names attributes to find directions for), or None."""
    name = gen.spec.get("evaluator", {}).get("name")
    return load_evaluator(name) if name else None


def save_latents(path: Path, inv: Inversion, names: list[str] | None = None,
                 meta: Mapping[str, object] | None = None) -> None:
    """An inversion as .npz: z, labels (class-conditional models), psnr and the input names, for `gankit edit`, and
    a provenance record naming the model (`meta`: Generator.provenance fields and what was inverted)."""
    label = latents_label(**(meta or {}))
    arrays = {"z": inv.z.numpy(), "psnr": inv.psnr.numpy(), "provenance": np.array(json.dumps(label))}
    if inv.labels is not None:
        arrays["labels"] = inv.labels.numpy()
    if names:
        arrays["names"] = np.array(names)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def read_latents(path: Path, gen: Generator) -> tuple[Tensor, Tensor | None, list[str] | None]:
    """(z, labels or None, names or None) from an .npz `gankit invert` wrote (or any with a `z` array)."""
    arrays = read_npz(path)
    if "z" not in arrays:
        raise UserError(f"{path} has no array 'z'", "write one with `gankit invert RUN IMAGES --out z.npz`")
    made_by = None
    if "provenance" in arrays:
        try:
            record = json.loads(str(arrays["provenance"]))
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise UserError(f"{path}: its provenance array is not a gankit record", "invert the images with this run")
        made_by = record.get("gankit:model_sha256")
    if made_by is not None and made_by != gen.weights_sha256():
        raise UserError(f"{path} holds latents another model found (its provenance names model {made_by[:12]}, "
                        f"this one is {gen.weights_sha256()[:12]}): they would draw other images here",
                        "invert the images with this run")
    z = arrays["z"]
    dim = gen.variant.z_dim
    if z.ndim != 2 or z.shape[1] != dim or z.dtype.kind != "f":
        raise UserError(f"{path}: z is {z.dtype}{list(z.shape)}, this model takes float (N, {dim})",
                        "invert the images with this run")
    refuse_non_finite(z, f"{path}['z']")
    labels = None
    if gen.class_names:
        if "labels" not in arrays:
            raise UserError(f"{path} has no 'labels' and this model is class-conditional",
                            "invert the images with this run")
        labels = gen.label_indices(torch.from_numpy(arrays["labels"].astype(np.int64)), len(z))
    names = [str(s) for s in arrays["names"]] if "names" in arrays and len(arrays["names"]) == len(z) else None
    return torch.from_numpy(z.astype(np.float32)), labels, names


def parse_edits(specs: list[str]) -> dict[str, float]:
    """["red=3", "sefa0=-2"] -> {"red": 3.0, "sefa0": -2.0}; amounts of one name add up."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, amount = spec.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise UserError(f"--direction {spec}: expected NAME=AMOUNT", "e.g. --direction red=3 or sefa0=-2")
        out[name] = out.get(name, 0.0) + value
    return out


def edit(z: Tensor, found: Directions, amounts: Mapping[str, float], hold: bool = True) -> Tensor:
    """z moved `amount` along each named direction (unit vectors, so amounts are in z's units); attribute edits hold
    the other attributes unless `hold` is False."""
    out = z.clone()
    for name, amount in amounts.items():
        vector = found.held(name) if hold else found[name].vector
        out = out + amount * vector.to(z)
    return out


def sweep(gen: Generator, found: Directions, amounts: Tensor, seed: int = 0) -> Tensor:
    """One sample (class 0 for conditional models) moved by each amount along each direction: (directions ×
    amounts, C, H, W), a row per direction, for a picture of what each does."""
    z = gen.latents(1, seed=seed)
    labels = torch.zeros(len(amounts), dtype=torch.long) if gen.class_names else None
    return torch.cat([gen.generate(torch.cat([edit(z, found, {name: float(a)}) for a in amounts]), labels=labels)
                      for name in found.items])


# ---------------------------------------------------------------------------------------------------- edit success


def editable(found: Directions, evaluator: Evaluator) -> dict[str, list[Direction]]:
    """The attributes with directions toward at least two of their values: what edit_success can edit."""
    attrs = {a: [d for d in found.items.values() if d.attribute == a] for a in evaluator.attributes}
    return {a: ds for a, ds in attrs.items() if len(ds) >= 2}


def edit_success(gen: Generator, evaluator: Evaluator, found: Directions, z: Tensor, labels: Tensor | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """Edit each latent toward one attribute value it does not show (attributes taken in turn, the value at random)
    and ask the evaluator: success when the edited attribute became that value and every other attribute held.
    Each edit moves z to EDIT_MARGIN past the value's boundary (at most MAX_AMOUNT); the same moves along random
    directions are the chance baseline."""
    attrs = editable(found, evaluator)
    if not attrs:
        raise UserError("no attribute has two directions to edit between", "fit directions with an evaluator that "
                        "knows the data")
    rng = torch.Generator().manual_seed(seed)
    if gen.class_names and labels is None:  # one class per latent, the same before and after the edit
        labels = torch.randint(len(gen.class_names), (len(z),), generator=rng)
    x = gen.generate(z, labels=labels)
    before = {a: evaluator.classify(x, a).cpu() for a in evaluator.attributes}
    names = list(attrs)
    moved, random_moved, targets, amounts = z.clone(), z.clone(), [], []
    for i in range(len(z)):
        attribute = names[i % len(names)]
        shown = evaluator.attributes[attribute][int(before[attribute][i])]
        choices = [d for d in attrs[attribute] if d.value != shown]
        d = choices[int(torch.randint(len(choices), (), generator=rng))]
        v = found.held(d.name)
        amount = float((EDIT_MARGIN - d.distance(z[i : i + 1])) / (d.vector @ v))
        amount = min(max(amount, 0.0), MAX_AMOUNT)
        moved[i] = z[i] + amount * v
        r = torch.randn(z.shape[1], generator=rng)
        random_moved[i] = z[i] + amount * r / r.norm()
        targets.append((attribute, evaluator.attributes[attribute].index(d.value)))
        amounts.append(amount)

    def score(latents: Tensor) -> tuple[float, float, float]:
        after_x = gen.generate(latents, labels=labels)
        after = {a: evaluator.classify(after_x, a).cpu() for a in evaluator.attributes}
        changed = torch.tensor([int(after[a][i]) == t for i, (a, t) in enumerate(targets)])
        held = torch.tensor([all(int(after[o][i]) == int(before[o][i]) for o in evaluator.attributes if o != a)
                             for i, (a, _) in enumerate(targets)])
        return float(changed.float().mean()), float(held.float().mean()), float((changed & held).float().mean())

    changed, held, success = score(moved)
    _, _, chance = score(random_moved)
    return {"edit_success": success, "edit_changed": changed, "edit_held": held, "edit_success_random": chance,
            "edit_amount_mean": sum(amounts) / len(amounts), "edits": len(z)}
