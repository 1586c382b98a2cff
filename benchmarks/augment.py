"""GAN data augmentation: does a class-conditional GAN trained on a small labelled set help a classifier trained on it?

For k images per class (10, 20, 50) drawn from a seeded half of scikit-learn's digits, a small CNN is trained four
ways and tested on the other half (898 images): on the k·10 real images; plus samples of a cGAN (`digits-cgan`,
trained on those k·10 images only); with classic augmentation (random shifts of up to 2 pixels and rotations of up
to 10°); and with both. Each arm trains the same number of steps on the same batch size, so the arms differ only in
what the batches hold. Means and standard errors over seeds, and a plot. Beside the arms, three readings of the
samples themselves say why they help or not: a CNN trained on them alone, the best real-data CNN's agreement with
the labels they were drawn for, and their distance to the nearest training image against held-out digits'.

    python benchmarks/augment.py                 # k = 10, 20, 50; 3 seeds; the cGAN at its preset length
    python benchmarks/augment.py --quick         # k = 20, one seed, a 500-step cGAN: a few minutes
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import gankit
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.train import Trainer

CLASSIFIER_STEPS = 1500
BATCH = 64
SYNTHETIC_PER_CLASS = 200  # cGAN samples per class added to the real set
SYNTHETIC_SHARE = 0.5  # share of each batch drawn from the synthetic images in the GAN arms


def classifier() -> nn.Module:
    """A small CNN for 16×16 grey digits."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 16, 10))


def shift_and_rotate(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Classic augmentation: each image shifted by up to 2 pixels and rotated by up to 10 degrees."""
    n, side = len(x), x.shape[-1]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * 2 / side)  # 2 px in [-1, 1] units
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # background stays -1


def train_classifier(x: torch.Tensor, y: torch.Tensor, synth: tuple[torch.Tensor, torch.Tensor] | None,
                     augment: bool, seed: int) -> nn.Module:
    """The CNN trained on (x, y), half of each batch from `synth` if given, shifted and rotated if `augment`."""
    torch.manual_seed(seed)
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    n_synth = int(BATCH * SYNTHETIC_SHARE) if synth is not None else 0
    net.train()
    for _ in range(CLASSIFIER_STEPS):
        idx = torch.randint(len(x), (BATCH - n_synth,), generator=gen)
        bx, by = x[idx], y[idx]
        if synth is not None:
            sidx = torch.randint(len(synth[0]), (n_synth,), generator=gen)
            bx, by = torch.cat([bx, synth[0][sidx]]), torch.cat([by, synth[1][sidx]])
        if augment:
            bx = shift_and_rotate(bx, gen)
        loss = F.cross_entropy(net(bx), by)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def nearest_train(x: torch.Tensor, y: torch.Tensor, train_x: torch.Tensor, train_y: torch.Tensor) -> float:
    """Mean pixel distance from each image to the nearest training image of its own class."""
    d = torch.cdist(x.flatten(1), train_x.flatten(1))
    d[y[:, None] != train_y[None, :]] = float("inf")
    return float(d.min(1).values.mean())


def one(k: int, seed: int, gan_steps: int | None, root: Path) -> dict:
    data = load_dataset(DataConfig(name="digits", resolution=16))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    half = len(data) // 2
    pool, test = order[:half], order[half:]
    px, py = data.take(pool)
    rows = torch.cat([(py == c).nonzero().flatten()[:k] for c in range(10)])
    x, y = px[rows], py[rows]
    path = root / f"k{k}-s{seed}.npz"
    np.savez(path, samples=x.numpy(), labels=y.numpy())
    overrides = [f"seed={seed}", "data.name=npz", f"data.path={path}", "data.labels_key=labels",
                 "train.sample_every=0"] + ([f"train.steps={gan_steps}"] if gan_steps else [])
    start = time.perf_counter()
    run = root / f"cgan-k{k}-s{seed}"
    Trainer(gankit.load_config("digits-cgan", overrides), run, progress=False).fit()
    gan_minutes = (time.perf_counter() - start) / 60
    g = gankit.load(run)
    labels = torch.arange(10).repeat_interleave(SYNTHETIC_PER_CLASS)
    synth = (g.sample(len(labels), seed=seed, labels=labels), labels)
    held = data.take(test)
    arms = {"real": (None, False), "real+gan": (synth, False), "real+classic": (None, True),
            "real+gan+classic": (synth, True)}
    result = {"k": k, "seed": seed, "cgan_minutes": round(gan_minutes, 2), "test": len(test)}
    nets = {name: train_classifier(x, y, s, aug, seed) for name, (s, aug) in arms.items()}
    result.update({name: accuracy(net, *held) for name, net in nets.items()})
    # Why the samples help or not: a classifier trained on them alone (classification accuracy score), how often
    # the best real-data classifier reads them as the class they were drawn for, and how near they lie to the k·10
    # training images against held-out real digits (a ratio well below 1: G redraws its training images).
    result["gan_only"] = accuracy(train_classifier(*synth, None, False, seed), *held)
    result["gan_label_agreement"] = accuracy(nets["real+classic"], *synth)
    result["nearest_ratio"] = round(nearest_train(*synth, x, y) / nearest_train(*held, x, y), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="10,20,50", help="images per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gan-steps", type=int, default=None, help="cGAN steps (default: the preset's)")
    parser.add_argument("--plot", default="docs/img/augment.png")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.k, args.seeds, args.gan_steps = "20", 1, 500
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in [int(v) for v in args.k.split(",")]:
            for seed in range(args.seeds):
                rows.append(one(k, seed, args.gan_steps, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    arms = ("real", "real+gan", "real+classic", "real+gan+classic")
    diagnostics = ("gan_only", "gan_label_agreement", "nearest_ratio")
    summary = {}
    print(f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"mean ± standard error over {args.seeds} seed(s)")
    for title, columns in (("test accuracy", arms), ("the samples", diagnostics)):
        print(f"{title}\n{'k/class':>7} " + " ".join(f"{a:>20}" for a in columns))
        for k in sorted({r["k"] for r in rows}):
            mine = [r for r in rows if r["k"] == k]
            cells = []
            for a in columns:
                v = np.array([r[a] for r in mine])
                se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
                summary[f"{a}_k{k}_mean"], summary[f"{a}_k{k}_se"] = round(float(v.mean()), 4), round(se, 4)
                cells.append(f"{v.mean():.3f} ± {se:.3f}")
            print(f"{k:>7} " + " ".join(f"{c:>20}" for c in cells))
    if args.plot and not args.quick:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ks = sorted({r["k"] for r in rows})
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        for a in arms:
            ax.errorbar(ks, [summary[f"{a}_k{k}_mean"] for k in ks], yerr=[summary[f"{a}_k{k}_se"] for k in ks],
                        marker="o", capsize=3, label=a)
        ax.set(xlabel="real training images per class", ylabel="test accuracy", xscale="log", xticks=ks,
               xticklabels=[str(k) for k in ks], title="digits: GAN samples vs classic augmentation")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
    print(json.dumps({"quick": args.quick, "seeds": args.seeds, **summary, "rows": rows}))


if __name__ == "__main__":
    main()
