"""Image-to-image quality: train shapes-pix2pix and shapes-srresnet, evaluate each against its targets.

pix2pix: label_preservation >= 0.95 and psnr_to_truth >= the better baseline + 6 dB; SRResNet: psnr_y >= bicubic + 2
dB. Wall-clock training minutes are reported beside each (the machine should be otherwise idle).

    python benchmarks/image2image.py                 # the presets as shipped (about 15 minutes on 2 cores)
    python benchmarks/image2image.py --quick         # 300 steps each: wiring, not the targets
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
from gankit.report import evaluate_run
from gankit.train import Trainer


def run(preset: str, root: Path, steps: int | None, seed: int) -> dict:
    """Train `preset` (all its steps, or `steps`) and return its eval values plus training minutes."""
    overrides = [f"seed={seed}"]
    if steps:
        overrides.append(f"train.steps={steps}")
        if gankit.load_config(preset).variant == "srgan":
            overrides.append(f"srgan.pretrain={steps}")  # the SRResNet stage only, as in the preset
    cfg = gankit.load_config(preset, overrides)
    start = time.perf_counter()
    Trainer(cfg, root / preset, progress=False).fit()
    minutes = (time.perf_counter() - start) / 60
    values = {k: v for k, v in evaluate_run(root / preset).items() if k != "protocol"}
    return {"minutes": round(minutes, 2), **{k: round(v, 4) for k, v in values.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 steps per preset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps = 300 if args.quick else None
    with tempfile.TemporaryDirectory() as tmp:
        p2p = run("shapes-pix2pix", Path(tmp), steps, args.seed)
        sr = run("shapes-srresnet", Path(tmp), steps, args.seed)
    baseline = max(p2p["baseline_identity_psnr"], p2p["baseline_histogram_psnr"])
    checks = {"pix2pix_label_preservation": p2p["label_preservation"] >= 0.95,
              "pix2pix_psnr_over_baseline_6db": p2p["psnr_to_truth"] >= baseline + 6,
              "srresnet_psnr_y_over_bicubic_2db": sr["psnr_y"] >= sr["bicubic_psnr_y"] + 2}
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, seed {args.seed}"
          f"{', quick' if args.quick else ''}")
    print(f"{'preset':16} {'minutes':>8}  figures")
    print(f"{'shapes-pix2pix':16} {p2p['minutes']:>8.2f}  PSNR {p2p['psnr_to_truth']:.2f} dB (identity "
          f"{p2p['baseline_identity_psnr']:.2f}, histogram {p2p['baseline_histogram_psnr']:.2f}), label preservation "
          f"{p2p['label_preservation']:.3f} (truth {p2p['label_preservation_truth']:.3f}), FD {p2p['fd_to_truth']:.1f}")
    print(f"{'shapes-srresnet':16} {sr['minutes']:>8.2f}  PSNR-Y {sr['psnr_y']:.2f} dB (bicubic {sr['bicubic_psnr_y']:.2f}),"
          f" SSIM-Y {sr['ssim_y']:.3f} (bicubic {sr['bicubic_ssim_y']:.3f}), sharpness {sr['sharpness']:.0f} "
          f"(truth {sr['sharpness_truth']:.0f}, bicubic {sr['sharpness_bicubic']:.0f})")
    print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in checks.items()))
    print(json.dumps({"seed": args.seed, "quick": args.quick, "pix2pix": p2p, "srresnet": sr, "targets_met": checks}))


if __name__ == "__main__":
    main()
