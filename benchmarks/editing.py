"""Editing quality of trained image GANs: inversion PSNR (random-pool start vs an encoder's), attribute boundaries,
edit success against random moves.

Inversion scores 64 held-out images (objects no training image shows, for shapes); the encoder-started inversion's
time is given as a ratio to the pool-started one, measured in the same process. Edit success is `gankit eval`'s
(200 edits of random latents, each toward an attribute value the sample does not show, holding the others).

    python benchmarks/editing.py runs/shapes-dcgan runs/shapes32-biggan   # trained runs (train them first)
    python benchmarks/editing.py --quick                                 # trains a 200-step shapes-dcgan: wiring
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import gankit
from gankit import edit as editing
from gankit.data import load_heldout
from gankit.train import Trainer, load

IMAGES = 64


def measure(run_dir: Path, encoder_steps: int) -> dict:
    """Inversion from the pool and from an encoder, then the run's editing metrics."""
    gen = load(run_dir)
    cfg = gankit.load_config(str(run_dir / "config.yaml"))
    real, _ = load_heldout(cfg.data, cfg.seed, IMAGES)
    start = time.perf_counter()
    pool = editing.invert(gen, real)
    pool_s = time.perf_counter() - start
    start = time.perf_counter()
    encoder, info = editing.train_encoder(gen, steps=encoder_steps)
    encoder_s = time.perf_counter() - start
    start = time.perf_counter()
    guided = editing.invert(gen, real, encoder=encoder)
    guided_s = time.perf_counter() - start
    start = time.perf_counter()
    values = {k: v for k, v in gankit.evaluate(run_dir).items() if k != "protocol"}
    found = editing.run_directions(gen, run_dir, editing.evaluator_for(gen))
    accuracy = [d.accuracy for d in found.items.values() if d.accuracy is not None]
    return {"step": gen.info.get("step"), "pool_psnr_start": float(pool.psnr_start.mean()),
            "pool_psnr": float(pool.psnr.mean()), "encoder_psnr_start": float(guided.psnr_start.mean()),
            "encoder_psnr": float(guided.psnr.mean()), "encoder_latent_mse": info["final_latent_mse"],
            "encoder_train_seconds": encoder_s, "encoder_inversion_time_ratio": guided_s / pool_s,
            "pool_inversion_seconds": pool_s, "eval_seconds": time.perf_counter() - start,
            "directions": len(found.items), "boundary_accuracy_mean": sum(accuracy) / max(1, len(accuracy)),
            **{k: v for k, v in values.items() if k.startswith(("edit_", "inversion_"))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="trained run directories")
    parser.add_argument("--quick", action="store_true", help="train a 200-step shapes-dcgan and measure it")
    parser.add_argument("--encoder-steps", type=int, default=editing.ENCODER_STEPS)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = list(args.runs)
        if args.quick:
            quick = Path(tmp) / "shapes-dcgan-200"
            Trainer(gankit.load_config("shapes-dcgan", ["train.steps=200", "train.sample_every=0"]), quick,
                    progress=False).fit()
            runs.append(quick)
            args.encoder_steps = min(args.encoder_steps, 200)
        if not runs:
            parser.error("give run directories, or --quick")
        for run_dir in runs:
            results[run_dir.name] = measure(run_dir, args.encoder_steps)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {IMAGES} held-out "
          f"images, encoder {args.encoder_steps} steps")
    print(f"{'run':22} {'step':>5} {'pool start':>10} {'pool':>6} {'enc start':>9} {'enc':>6} {'success':>8} "
          f"{'random':>7} {'inverted':>8} {'boundary':>8}")
    for name, r in results.items():
        print(f"{name:22} {r['step']:>5} {r['pool_psnr_start']:>10.2f} {r['pool_psnr']:>6.2f} "
              f"{r['encoder_psnr_start']:>9.2f} {r['encoder_psnr']:>6.2f} {r.get('edit_success', float('nan')):>8.3f} "
              f"{r.get('edit_success_random', float('nan')):>7.3f} "
              f"{r.get('edit_success_inverted', float('nan')):>8.3f} {r['boundary_accuracy_mean']:>8.3f}")
    print(json.dumps({"quick": args.quick, "encoder_steps": args.encoder_steps,
                      "runs": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in r.items()}
                               for k, r in results.items()}}))


if __name__ == "__main__":
    main()
