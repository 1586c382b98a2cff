"""Train the `digits` feature extractor and write the weights + card that ship in gankit/metrics/weights/.

Deterministic: a seeded stratified held-out split, seeded initialisation, batch order and augmentation, one CPU
thread (so float reductions always run in the same order). About 20 s on one CPU core.

    python scripts/train_digits_evaluator.py            # rewrites gankit/metrics/weights/digits.{safetensors,json}
    python scripts/train_digits_evaluator.py --out /tmp/digits.safetensors
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import the checkout's gankit

from gankit.data import digits  # noqa: E402
from gankit.io import write_bytes, write_json  # noqa: E402
from gankit.metrics.digits_classifier import (  # noqa: E402
    WEIGHTS, DigitsClassifier, accuracy, fit_classifier, index_digest, stratified_split)

ARCHITECTURE = {"width": 32, "feature_dim": 128, "dropout": 0.3}
RECIPE = {"epochs": 25, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4,
          "augment": {"shift_px": 2.0, "rotate_deg": 10.0, "scale": [0.9, 1.1], "noise_std": 0.05}}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift (±2 px), rotation (±10°), scale and pixel noise: GAN samples are off-centre and imperfect."""
    aug = RECIPE["augment"]
    n = len(x)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(aug["rotate_deg"])
    lo, hi = aug["scale"]
    scale = lo + (hi - lo) * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * aug["shift_px"] * 2 / x.shape[-1]  # pixels -> [-1, 1] units
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with 0, so sample x + 1 (background 0) and shift back: the border stays background (-1)
    moved = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
    return (moved + aug["noise_std"] * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def train(seed: int, holdout: float, epochs: int) -> tuple[DigitsClassifier, dict]:
    """Fit the classifier on the training part of the split; returns it and the card describing how."""
    data = digits()
    labels = data.y.numpy()
    train_idx, heldout_idx = stratified_split(labels, holdout, seed)
    x_train, y_train = data.x[train_idx], data.y[train_idx]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitsClassifier(**ARCHITECTURE)
    fit_classifier(model, lambda at: F.cross_entropy(model(augment(x_train[at], gen))[1], y_train[at]),
                   len(train_idx), RECIPE, epochs, gen)
    card = {
        "name": "digits",
        "description": "CNN classifier of gankit.data.digits() (scikit-learn digits at 16x16 in [-1, 1]); "
                       "features = the 128-d ReLU layer before the class logits",
        "input": {"shape": [1, 16, 16], "range": [-1, 1]},
        "architecture": {"class": "gankit.metrics.digits_classifier.DigitsClassifier", "args": ARCHITECTURE},
        "training": {**RECIPE, "epochs": epochs, "optimizer": "AdamW + one-cycle", "seed": seed, "threads": 1,
                     "torch": torch.__version__},
        "split": {"method": "stratified_split", "holdout": holdout, "seed": seed, "train": len(train_idx),
                  "heldout": len(heldout_idx), "heldout_sha256": index_digest(heldout_idx)},
        "accuracy": {"heldout": round(accuracy(model, data.x[heldout_idx], data.y[heldout_idx]), 4),
                     "train": round(accuracy(model, x_train, y_train), 4)},
    }
    return model, card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out fraction of every class")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="the shipped weights use the default")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights file; the card goes beside it as .json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, card = train(args.seed, args.holdout, args.epochs)
    write_bytes(args.out, save(model.state_dict()))
    write_json(args.out.with_suffix(".json"), card)
    print(f"held-out accuracy {card['accuracy']['heldout']:.4f} ({card['split']['heldout']} images), "
          f"train {card['accuracy']['train']:.4f}, {time.perf_counter() - start:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
