"""MoCoGAN against a frame-wise DCGAN of the same size and budget on moving shapes: content consistency, average
content distance (ACD), motion smoothness and speed, frame FD (gankit eval's clip metrics), with real clips'
values as the reference.

The baseline is `moving-shapes-video mocogan.framewise=true mocogan.sprite=false`: the same image D, the same steps
and batch, DCGAN's image generator drawing every frame from an independent latent, and no video D (T draws of an
image GAN; with the preset's labels, each frame drawn for its clip's class). It has nothing that holds a clip's
content beyond the class, which is what ACD and consistency measure.

    python benchmarks/video.py                          # trains both (seed 0), then evaluates
    python benchmarks/video.py --runs MOCOGAN FRAMEWISE   # trained runs of the two, in that order
    python benchmarks/video.py --quick                  # 200 steps each: the wiring
    python benchmarks/video.py --set mocogan.labels=none loss.name=non_saturating optim.beta1=0.5 train.steps=5000
                                                        # the unconditional pair (overrides for both)
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
from gankit.train import Trainer

PRESET = "moving-shapes-video"
MODELS = {"mocogan": [], "framewise": ["mocogan.framewise=true", "mocogan.sprite=false"]}
KEYS = ("consistency", "class_mix_tv", "class_accuracy", "consistency_color", "acd", "acd_color", "motion_smoothness",
        "motion_speed", "frame_fd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs=2, type=Path, help="trained runs: MoCoGAN, then the frame-wise baseline")
    parser.add_argument("--quick", action="store_true", help="200 training steps each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides of the preset for "
                        "both models (the baseline adds mocogan.framewise=true mocogan.sprite=false)")
    args = parser.parse_args()
    results, real = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, overrides) in enumerate(MODELS.items()):
            if args.runs:
                run_dir, minutes = args.runs[i], None
            else:
                run_dir = Path(tmp) / name
                extra = [f"seed={args.seed}", *args.set, *overrides] + (["train.steps=200"] if args.quick else [])
                start = time.perf_counter()
                Trainer(gankit.load_config(PRESET, extra), run_dir, progress=False).fit()
                minutes = (time.perf_counter() - start) / 60
            values = gankit.evaluate(run_dir, seed=args.seed)
            results[name] = {"minutes": minutes, "step": values["protocol"]["acd"]["step"],
                             **{k: values.get(k) for k in KEYS}}
            real = {k: values.get(f"{k}_real") for k in KEYS if f"{k}_real" in values}
            real["class_mix_tv"] = 0.0
    results["real clips"] = {"minutes": None, "step": None, **{k: real.get(k) for k in KEYS}}
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, seed {args.seed}"
          f"{', quick' if args.quick else ''}; {' '.join([PRESET, *args.set])}, 500 clips of 16 frames, shapes evaluator")
    print(f"{'model':11} {'steps':>5} {'min':>5} {'consist.':>8} {'mix TV':>6} {'cls acc':>7} {'colour':>6} "
          f"{'ACD':>6} {'ACD col':>7} {'jerk':>6} {'speed':>6} {'frame FD':>8}")

    def cell(value, width, digits):
        return f"{value:>{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"
    for name, r in results.items():
        print(f"{name:11} {r['step'] if r['step'] is not None else '-':>5} {cell(r['minutes'], 5, 1)} "
              f"{cell(r['consistency'], 8, 3)} {cell(r['class_mix_tv'], 6, 3)} {cell(r['class_accuracy'], 7, 3)} "
              f"{cell(r['consistency_color'], 6, 3)} {cell(r['acd'], 6, 2)} "
              f"{cell(r['acd_color'], 7, 4)} {cell(r['motion_smoothness'], 6, 4)} {cell(r['motion_speed'], 6, 4)} "
              f"{cell(r['frame_fd'], 8, 1)}")
    print(json.dumps({"seed": args.seed, "quick": args.quick, "preset": PRESET, "overrides": args.set, "runs": {
        n: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for n, r in results.items()}}))


if __name__ == "__main__":
    main()
