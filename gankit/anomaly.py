"""Anomaly scores from a GAN trained on normal images only (`data.normal`): what its generator cannot redraw, or
redraws into something its discriminator sees differently, is unusual.

AnoGAN (Schlegl et al. 2017) searches G's latent space for the sample closest to an image and scores what is left;
f-AnoGAN (Schlegl et al. 2019) scores the same two residuals, in pixels and in D's features. Here the search is
gankit.edit.invert (best of a random pool, then Adam on the pixel error), and the score is

    score = (1 − κ)·mean (x − G(z*))² + κ·mean (f_D(x) − f_D(G(z*)))²

with f_D the features of D's last convolution block, taken from the run's newest checkpoint (κ = 0 when the run has
none, or its D judges images with their class). Higher means more anomalous.

`neighbour_scores` needs no redraw: the mean distance, in the same D features, to the k nearest normal training
images (kNN on learnt features, as Bergman et al. 2020 do with pretrained ones).
"""

from __future__ import annotations

import csv
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import load_dataset
from .edit import cached_module, frozen, invert, optimizer_step
from .errors import UserError
from .io import atomic_path
from .nets import DCGANEncoder
from .train import Generator
from .train.pretrained import run_variant
from .variants import Request, Variant, resolve

KAPPA = 0.1  # f-AnoGAN's weight of the feature residual
STEPS = 100  # inversion steps per image: AnoGAN's search, shortened (the ranking settles early)
ENCODER_STEPS = 1500  # f-AnoGAN's izi_f encoder: Adam steps on batches of the normal training images
CACHE = "anomaly"  # RUN/anomaly/encoder.{safetensors,json}
NEIGHBOURS = 5  # k of the nearest-neighbour score


@dataclass
class Scores:
    """Per image: the anomaly score and its two residuals (N,) (None where the score has none), and how they were
    made."""

    score: Tensor
    pixel: Tensor | None
    features: Tensor | None
    protocol: dict


def discriminator(run_dir: Path) -> Variant | None:
    """The run's whole variant from its newest checkpoint when its D can give features of images alone, else None."""
    found = run_variant(run_dir)
    if found is None:
        return None
    variant, shape = found
    try:
        variant.features(torch.zeros(2, *shape))
    except ValueError:
        return None
    return variant


def anomaly_scores(gen: Generator, x: Tensor, critic: Variant | None = None, kappa: float = KAPPA,
                   steps: int = STEPS, seed: int = 0, advance=None, encoder: nn.Module | None = None) -> Scores:
    """Scores (higher: more anomalous) of images x (N, C, H, W) in [-1, 1] at the model's size: G(z*) from the latent
    search, or from an `encoder`'s z = E(x) in one pass (f-AnoGAN's izi_f, train_encoder)."""
    check_model(gen)
    if tuple(x.shape[1:]) != tuple(gen.spec["shape"]):
        raise UserError(f"images are {tuple(x.shape[1:])}, the model takes {tuple(gen.spec['shape'])}",
                        "read them with the model's data kind (it resizes), or resize them first")
    if gen.variant.scores_anomalies:  # the model's own score (GANomaly's latent distance): no search, no residuals
        with torch.no_grad():
            own = torch.cat([gen.variant.anomaly_score(part).cpu() for part in x.split(256)])
        if advance is not None:
            advance(len(x))
        return Scores(own, None, None, {"latent": "the model's own score", "normal": gen.spec.get("normal")})
    if encoder is not None:
        with torch.no_grad():
            redrawn = torch.cat([gen.generate(encoder(part.to(gen.device)).cpu()) for part in x.split(256)])
        if advance is not None:
            advance(len(x))
        how = "the izi_f encoder's z = E(x), one pass"
    else:
        redrawn = invert(gen, x, steps=steps, seed=seed, advance=advance).images
        how = f"gankit.edit.invert, {steps} steps"
    pixel = (x - redrawn).pow(2).flatten(1).mean(1)
    features = None
    if critic is not None and kappa:
        with torch.no_grad():
            features = torch.cat([feature_residual(critic, a, b) for a, b in zip(x.split(256), redrawn.split(256))])
    score = pixel if features is None else (1 - kappa) * pixel + kappa * features
    protocol = {"latent": how, "kappa": kappa if features is not None else 0.0,
                "features": "D's last block, newest checkpoint" if features is not None else "none (no usable D)",
                "normal": gen.spec.get("normal")}
    return Scores(score, pixel, features, protocol)


def check_model(gen: Generator) -> None:
    if gen.class_names or gen.kind != "image" or {"inputs", "codes"} & gen.sampling:
        raise UserError("anomaly scores need a model of normal images drawn from noise, without classes",
                        "train an unconditional image model on the normal classes: data.normal=CLASS")


def feature_residual(critic: Variant, a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference of D's features of a and b, per image."""
    return (critic.features(a.to(critic.device)) - critic.features(b.to(critic.device))).pow(2).mean(1).cpu()


def train_encoder(gen: Generator, critic: Variant | None, images: Tensor, kappa: float = KAPPA,
                  steps: int | None = None, batch_size: int = 64, seed: int = 0,
                  advance=None) -> tuple[nn.Module, dict]:
    """f-AnoGAN's izi_f encoder: E trained on the normal training images so that G(E(x)) redraws x, in pixels and
    (weight κ) in D's features, with G and D frozen. Returns E in eval mode and how it was trained."""
    steps = ENCODER_STEPS if steps is None else steps
    channels, side, _ = gen.spec["shape"]
    torch.manual_seed(seed)
    encoder = DCGANEncoder(channels, side, gen.variant.z_dim).to(gen.device)
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-4, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(seed)
    loss = torch.zeros(())
    with frozen(gen.variant), (frozen(critic) if critic is not None else nullcontext()):
        for _ in range(steps):
            x = images[torch.randint(len(images), (batch_size,), generator=rng)].to(gen.device)
            z = encoder(x)
            redrawn = gen.variant.generate(Request(len(z), z=z))
            loss = (x - redrawn).pow(2).mean()
            if critic is not None and kappa:
                loss = loss + kappa * (critic.features(x) - critic.features(redrawn)).pow(2).mean()
            optimizer_step(opt, loss)
            if advance is not None:
                advance(1)
    return encoder.eval(), {"steps": steps, "batch_size": batch_size, "seed": seed, "kappa": kappa,
                            "images": len(images), "final_loss": round(float(loss.detach()), 6)}


def run_encoder(gen: Generator, run_dir: Path, critic: Variant | None, kappa: float = KAPPA,
                advance=None) -> nn.Module:
    """The run's izi_f encoder: read from RUN/anomaly/ when trained for these weights and κ, else trained on the
    run's (normal) training images and saved."""
    channels, side, _ = gen.spec["shape"]

    def train() -> tuple[nn.Module, dict]:
        return train_encoder(gen, critic, training_images(run_dir), kappa, advance=advance)

    return cached_module(run_dir / CACHE / "encoder", {"fingerprint": gen.weights_sha256(), "kappa": kappa},
                         lambda meta: DCGANEncoder(channels, side, gen.variant.z_dim), train).to(gen.device).eval()


def training_images(run_dir: Path) -> Tensor:
    """The run's (normal) training images, re-read from its config.yaml."""
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} has no config.yaml, so its training images are unknown",
                        "score by the latent search (no --encoder, no --knn): it needs no training images")
    cfg = resolve(str(run_dir / "config.yaml"))[0]
    data = load_dataset(cfg.data, cfg.seed)
    return data.take(torch.arange(len(data)))[0]


DISTANCES = ("euclidean", "cosine")


def trained_distance(run_dir: Path) -> str:
    """The neighbour distance a run's D was trained for: cosine after a contrastive term (loss.contrastive), which
    compares directions of D's features, else Euclidean."""
    return "cosine" if resolve(str(run_dir / "config.yaml"))[0].loss.contrastive else "euclidean"


@torch.no_grad()
def neighbour_scores(critic: Variant, normal: Tensor, x: Tensor, k: int = NEIGHBOURS, advance=None,
                     distance: str = "euclidean") -> Scores:
    """Scores of images x: the mean distance of f_D(x) to the features of its k nearest images among `normal` (the
    normal training images). One pass of D, no generator. `distance` "cosine" scales every feature vector to length
    1 first (Euclidean distance then orders pairs as cosine similarity does: what a contrastive term trains)."""
    if not 1 <= k <= len(normal):
        raise UserError(f"k = {k} neighbours (--knn) asked of {len(normal)} normal training images",
                        f"give k from 1 to {len(normal)}")
    if distance not in DISTANCES:
        raise UserError(f"distance {distance!r} is not one of {', '.join(DISTANCES)}", "pick one of them")

    def features(images: Tensor) -> Tensor:
        out = torch.cat([critic.features(part.to(critic.device)).double().cpu() for part in images.split(256)])
        return F.normalize(out, dim=1) if distance == "cosine" else out

    bank, parts = features(normal), []
    for part in x.split(256):
        parts.append(torch.cdist(features(part), bank).topk(k, dim=1, largest=False).values.mean(1))
        if advance is not None:
            advance(len(part))
    return Scores(torch.cat(parts).float(), None, None, {"latent": "none: nearest neighbours in D's features",
                                                        "k": k, "bank": len(normal), "distance": distance,
                                                        "features": "D's last block, newest checkpoint"})


def auroc(scores: Tensor, anomalous: Tensor) -> float:
    """Area under the ROC curve of scores for telling anomalous (True) from normal: the chance that a random
    anomaly scores above a random normal image (ties count half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(anomalous.numpy().astype(int), scores.numpy()))


def write_scores(path: Path, names: list[str], scores: Scores, labels: list[str] | None = None,
                 anomalous: Tensor | None = None) -> None:
    """A CSV with one row per input: name, score, pixel and feature residuals, and the label and verdict when
    known."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "score", "pixel_residual", "feature_residual"]
                        + (["label", "anomalous"] if labels is not None else []))
        for i, name in enumerate(names):
            row = [name, f"{float(scores.score[i]):.6g}",
                   *("" if part is None else f"{float(part[i]):.6g}" for part in (scores.pixel, scores.features))]
            if labels is not None:
                row += [labels[i], int(anomalous[i])]
            writer.writerow(row)


def roc_plot(path: Path, scores: Tensor, anomalous: Tensor, title: str) -> None:
    """The ROC curve as a PNG labelled with its AUROC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(anomalous.numpy().astype(int), scores.numpy())
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot(fpr, tpr, label=f"AUROC {auroc(scores, anomalous):.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate (normal flagged)", ylabel="true positive rate (anomalies found)", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def folder_labels(root: Path, files: list[Path]) -> list[str] | None:
    """The first sub-folder under `root` of each file (its label), or None when the files are not in sub-folders."""
    labels = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else None for f in files]
    return None if any(label is None for label in labels) else labels
