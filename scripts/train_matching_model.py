"""Train the image–text matching model behind R-precision and write the weights + card that ship in
gankit/metrics/weights/.

Deterministic: captioned shapes as the `shapes32-text2img` preset draws them (one size, nine cells, upright, flat
backgrounds) but of every (colour, shape) pair and from their own seed, full captions, seeded initialisation, batch
order and augmentation, one CPU thread. A few minutes on one CPU core.

    python scripts/train_matching_model.py               # rewrites gankit/metrics/weights/matching.{safetensors,json}
    python scripts/train_matching_model.py --out /tmp/m.safetensors --epochs 1 --n 2000   # quick check
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import the checkout's gankit

from gankit.data.captions import caption_dataset, other_captions, tokenize, vocabulary  # noqa: E402
from gankit.data.shapes import Difficulty  # noqa: E402
from gankit.io import write_bytes, write_json  # noqa: E402
from gankit.metrics.digits_classifier import fit_classifier  # noqa: E402
from gankit.metrics.matching import CANDIDATES, WEIGHTS, MatchingModel, contrastive_loss, r_precision  # noqa: E402
from train_shapes_evaluator import blur  # noqa: E402

# the preset's rendering (gankit/presets/shapes32-text2img.yaml); every pair, objects of their own seeds
DATA = {"n": 20_000, "resolution": 32, "seed": 101, "test_seed": 102, "test_n": 2000,
        "difficulty": {"size_range": [0.3, 0.3], "jitter": 0.5, "rotation": 0.0, "noise": 0.0, "gradient": 0.0}}
ARCHITECTURE = {"width": 32, "dim": 64, "embed_dim": 32, "text_dim": 64}
RECIPE = {"epochs": 8, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4,
          "augment": {"blur_p": 0.5, "blur_sigma_px": 1.2, "channel_shift": 0.06, "noise_std": 0.06}}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur, a small per-channel shift and pixel noise (GAN samples are soft and noisy); no flips: they move objects."""
    aug, n = RECIPE["augment"], len(x)
    x = blur(x, aug["blur_sigma_px"] * torch.rand(n, generator=gen) * (torch.rand(n, generator=gen) < aug["blur_p"]))
    shift = aug["channel_shift"] * (2 * torch.rand(n, 3, 1, 1, generator=gen) - 1)
    return (x + shift + aug["noise_std"] * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def captioned(n: int, seed: int):
    """(images in [-1, 1], full-caption word ids, the dataset) of n objects of every pair."""
    d = DATA["difficulty"]
    difficulty = Difficulty(tuple(d["size_range"]), d["jitter"], d["rotation"], d["noise"], d["gradient"])
    data = caption_dataset(n, DATA["resolution"], seed, difficulty, unseen=())
    rows = torch.arange(n)
    return data.take(rows)[0], tokenize(data.captions(rows, torch.zeros_like(rows)), vocabulary()), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"], help="the shipped weights use the default")
    parser.add_argument("--n", type=int, default=DATA["n"], help="images generated (fewer for quick checks)")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights file; the card goes beside it as .json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    x, tokens, _ = captioned(args.n, DATA["seed"])
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = MatchingModel(len(vocabulary()), **ARCHITECTURE)
    fit_classifier(model, lambda rows: contrastive_loss(model, augment(x[rows], gen), tokens[rows]), len(x), RECIPE,
                   args.epochs, gen)
    test_x, test_tokens, test = captioned(DATA["test_n"], DATA["test_seed"])
    others = [tokenize(o, vocabulary()) for o in other_captions(test, CANDIDATES - 1, torch.Generator().manual_seed(0))]
    score = r_precision(model, test_x, test_tokens, others)
    card = {"name": "matching", "description": "image-text matching model of captioned shapes (gankit.data.captions): "
            "unit image and caption embeddings whose dot product scores a match; R-precision's judge",
            "input": {"shape": [3, 32, 32], "range": [-1, 1]}, "vocab": vocabulary(),
            "data": {"function": "gankit.data.captions.caption_dataset", **DATA, "unseen": [],
                     "captions": "template 0 (names shape, colour, cell and background)"},
            "architecture": ARCHITECTURE,
            "training": {**RECIPE, "epochs": args.epochs, "loss": "symmetric InfoNCE, equal captions all positive",
                         "optimizer": "AdamW + one-cycle", "seed": args.seed, "threads": 1,
                         "torch": torch.__version__},
            "r_precision_real": {"value": round(score, 4), "images": DATA["test_n"], "candidates": CANDIDATES,
                                 "distractor_seed": 0}}
    write_bytes(args.out, save(model.state_dict()))
    write_json(args.out.with_suffix(".json"), card)
    print(f"R-precision of real held-out images: {score:.4f} ({DATA['test_n']} images, {CANDIDATES} candidates); "
          f"{time.perf_counter() - start:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
