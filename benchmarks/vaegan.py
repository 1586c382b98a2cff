"""VAE-GAN against a plain VAE (the same encoder and decoder) and DCGAN on digits: sample quality (FD, precision,
recall in the digits evaluator's features), sharpness (gradient energy) of samples and reconstructions, and
reconstruction error on the same 1,000 images.

VAE-GAN and the VAE reconstruct through their encoder, G(μ(x)); DCGAN has none, so its reconstruction is the
inversion of each image (gankit.edit.invert: best of 256 random latents, then 300 Adam steps on the pixel error),
which is slower and favours DCGAN: it optimises each image.

    python benchmarks/vaegan.py                          # trains digits-vaegan, digits-vae, digits-dcgan (seed 0)
    python benchmarks/vaegan.py --runs A B C             # trained runs of those three presets, in that order
    python benchmarks/vaegan.py --quick                  # 300 steps each: the wiring
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
from gankit.metrics.translation import psnr, sharpness
from gankit.report.compare import round_to_8bit
from gankit.train import Trainer

PRESETS = ("digits-vaegan", "digits-vae", "digits-dcgan")
IMAGES = 1000


def reconstruction(run_dir: Path) -> dict:
    gen = gankit.load(run_dir)
    cfg = gankit.load_config(str(run_dir / "config.yaml"))
    real, _ = load_heldout(cfg.data, cfg.seed, IMAGES)
    start = time.perf_counter()
    out = gen.reconstruct(real) if gen.encodes else editing.invert(gen, real).images
    seconds = time.perf_counter() - start
    out = round_to_8bit(out)
    samples = gen.sample(IMAGES, seed=cfg.seed)
    return {"reconstruction_error": float(((out - real) / 2).pow(2).mean()), "reconstruction_psnr": psnr(out, real),
            "reconstruction_by": "encoder" if gen.encodes else "inversion", "reconstruction_seconds": seconds,
            "sharpness_samples": float(sharpness(samples).mean()),
            "sharpness_reconstructions": float(sharpness(out).mean()), "sharpness_real": float(sharpness(real).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs=3, type=Path, help="trained runs of digits-vaegan, digits-vae, digits-dcgan")
    parser.add_argument("--quick", action="store_true", help="300 training steps each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, preset in enumerate(PRESETS):
            if args.runs:
                run_dir, minutes = args.runs[i], None
            else:
                run_dir = Path(tmp) / preset
                overrides = [f"seed={args.seed}"] + (["train.steps=300"] if args.quick else [])
                start = time.perf_counter()
                Trainer(gankit.load_config(preset, overrides), run_dir, progress=False).fit()
                minutes = (time.perf_counter() - start) / 60
            values = gankit.evaluate(run_dir)
            results[preset] = {"minutes": minutes, "fid": values["fid"], "precision": values["precision"],
                               "recall": values["recall"], **reconstruction(run_dir)}
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, seed {args.seed}"
          f"{', quick' if args.quick else ''}; FD in digits features, reconstruction on {IMAGES} training images")
    print(f"{'preset':14} {'FD':>8} {'precision':>9} {'recall':>7} {'rec. MSE':>9} {'rec. PSNR':>9} "
          f"{'sharp. samples':>14} {'sharp. rec.':>11}  by")
    for preset, r in results.items():
        print(f"{preset:14} {r['fid']:>8.1f} {r['precision']:>9.3f} {r['recall']:>7.3f} "
              f"{r['reconstruction_error']:>9.4f} {r['reconstruction_psnr']:>9.2f} {r['sharpness_samples']:>14.0f} "
              f"{r['sharpness_reconstructions']:>11.0f}  {r['reconstruction_by']} ({r['reconstruction_seconds']:.0f} s)"
              f"; real images' sharpness {r['sharpness_real']:.0f}")
    print(json.dumps({"seed": args.seed, "quick": args.quick, "runs": {
        p: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for p, r in results.items()}}))


if __name__ == "__main__":
    main()
