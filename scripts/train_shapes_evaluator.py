"""Train the `shapes` feature extractor and write the weights + card that ship in gankit/metrics/weights/.

Deterministic: the full shapes set (every shape and colour, 32×32, data seed 0), a seeded held-out split stratified
by (shape, colour) pair, seeded initialisation, batch order and augmentation, one CPU thread (so float reductions
always run in the same order). A few minutes on one CPU core.

    python scripts/train_shapes_evaluator.py            # rewrites gankit/metrics/weights/shapes.{safetensors,json}
    python scripts/train_shapes_evaluator.py --out /tmp/shapes.safetensors --epochs 1 --n 2000   # quick check
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import the checkout's gankit

from gankit.data.shapes import COLORS, SHAPES, shapes  # noqa: E402
from gankit.io import write_bytes, write_json  # noqa: E402
from gankit.metrics.digits_classifier import fit_classifier, index_digest, stratified_split  # noqa: E402
from gankit.metrics.shapes_classifier import RESOLUTION, WEIGHTS, ShapesClassifier, accuracies  # noqa: E402

DATA = {"n": 20_000, "resolution": RESOLUTION, "seed": 0}
ARCHITECTURE = {"width": 32, "feature_dim": 128, "dropout": 0.2}
RECIPE = {"epochs": 10, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4,
          "augment": {"flips": True, "blur_p": 0.5, "blur_sigma_px": 1.2, "channel_shift": 0.06, "noise_std": 0.06}}


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each image (N, C, H, W) with its own `sigma` (N,) in pixels (0: unchanged), 5×5 kernel."""
    n, c, h, w = x.shape
    taps = torch.arange(-2, 3, dtype=x.dtype)
    kernel = torch.exp(-taps**2 / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))  # (N, 5)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*C, 5): one per channel
    x = F.pad(x.reshape(1, n * c, h, w), (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, kernel.view(n * c, 1, 1, 5), groups=n * c)
    return F.conv2d(x, kernel.view(n * c, 1, 5, 1), groups=n * c).view(n, c, h, w)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips, blur, a small per-channel shift and pixel noise: neither the shape nor the colour of an object
    changes under a mirror, and GAN samples are often soft and noisy (without blur the shape head fails on them)."""
    aug = RECIPE["augment"]
    n = len(x)
    flip_x, flip_y = (torch.rand(2, n, 1, 1, 1, generator=gen) < 0.5).unbind(0)
    x = torch.where(flip_x, x.flip(-1), x)
    x = torch.where(flip_y, x.flip(-2), x)
    blurred = torch.rand(n, generator=gen) < aug["blur_p"]
    x = blur(x, aug["blur_sigma_px"] * torch.rand(n, generator=gen) * blurred)
    shift = aug["channel_shift"] * (2 * torch.rand(n, 3, 1, 1, generator=gen) - 1)
    return (x + shift + aug["noise_std"] * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def train(seed: int, holdout: float, epochs: int, n: int = DATA["n"]) -> tuple[ShapesClassifier, dict]:
    """Fit the classifier on the training part of the split; returns it and the card describing how."""
    data = shapes(n, DATA["resolution"], label="shape_color", seed=DATA["seed"])
    x = data.take(torch.arange(len(data)))[0]  # (N, 3, 32, 32) float in [-1, 1]
    shape, color = data.attributes["shape"], data.attributes["color"]
    train_idx, heldout_idx = stratified_split(data.y.numpy(), holdout, seed)
    train_idx_t = torch.from_numpy(train_idx)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ShapesClassifier(**ARCHITECTURE)

    def batch_loss(positions: torch.Tensor) -> torch.Tensor:
        batch = train_idx_t[positions]
        _, shape_logits, color_logits = model.heads(augment(x[batch], gen))
        return F.cross_entropy(shape_logits, shape[batch]) + F.cross_entropy(color_logits, color[batch])

    fit_classifier(model, batch_loss, len(train_idx), RECIPE, epochs, gen)
    held, trained = torch.from_numpy(heldout_idx), train_idx_t
    card = {
        "name": "shapes",
        "description": "two-head CNN classifier of gankit.data.shapes() (32x32 RGB in [-1, 1]): shape and colour; "
                       "features = the 128-d ReLU layer before the heads, logits = the shape head",
        "input": {"shape": [3, RESOLUTION, RESOLUTION], "range": [-1, 1]},
        "classes": {"shape": list(SHAPES), "color": list(COLORS)},
        "data": {"function": "gankit.data.shapes.shapes", **DATA, "n": n, "shapes": "all", "colors": "all"},
        "architecture": {"class": "gankit.metrics.shapes_classifier.ShapesClassifier", "args": ARCHITECTURE},
        "training": {**RECIPE, "epochs": epochs, "loss": "cross-entropy of shape + cross-entropy of colour",
                     "optimizer": "AdamW + one-cycle", "seed": seed, "threads": 1, "torch": torch.__version__},
        "split": {"method": "stratified_split", "stratify": "shape_color (shape * len(COLORS) + color)",
                  "holdout": holdout, "seed": seed, "train": len(train_idx), "heldout": len(heldout_idx),
                  "heldout_sha256": index_digest(heldout_idx)},
        "accuracy": {
            "heldout": {k: round(v, 4) for k, v in accuracies(model, x[held], shape[held], color[held]).items()},
            "train": {k: round(v, 4) for k, v in accuracies(model, x[trained], shape[trained], color[trained]).items()},
        },
    }
    return model, card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out fraction of every (shape, colour) pair")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="the shipped weights use the default")
    parser.add_argument("--n", type=int, default=DATA["n"], help="images generated (fewer for quick checks)")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights file; the card goes beside it as .json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, card = train(args.seed, args.holdout, args.epochs, args.n)
    write_bytes(args.out, save(model.state_dict()))
    write_json(args.out.with_suffix(".json"), card)
    held = card["accuracy"]["heldout"]
    print(f"held-out accuracy: shape {held['shape']:.4f}, colour {held['color']:.4f} ({card['split']['heldout']} "
          f"images); train {card['accuracy']['train']}, {time.perf_counter() - start:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
