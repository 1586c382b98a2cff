"""Text-to-image on captioned shapes: the shapes32-text2img preset and its ablations, same steps and seeds.

Rows (each trained for `--steps` steps, one torch thread per run, measured by `gankit eval`'s attribute_accuracy
and r_precision on 600 held-out captions of seen pairs and 600 of the unseen pairs):

    preset          shapes32-text2img as shipped
    no-mismatch     text2img.mismatch=false: D never sees real images with mismatched captions
    kl-1            text2img.kl_weight=1 (StackGAN's weight; with a text encoder learnt from scratch)
    contrastive     text2img.contrastive=1: XMC-GAN's image-text InfoNCE for D and G as well
    no-area         text2img.object_area=0: the layered G without the penalty that makes its mask the object
    one-piece       text2img.layered=false: one BigGAN G reading a GRU encoder of its own (the 2026-12-05 preset)
    d-encoder       one-piece, with text2img.own_encoder=false: G reads D's text encoder (detached)

    python benchmarks/text2img.py --quick                 # 1 seed, 600 steps, the preset row only
    python benchmarks/text2img.py --rows preset no-mismatch kl-1 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ONE_PIECE = ["text2img.layered=false", "text2img.object_area=0"]
ROWS = {"preset": [], "no-mismatch": ["text2img.mismatch=false"], "kl-1": ["text2img.kl_weight=1"],
        "contrastive": ["text2img.contrastive=1"], "no-area": ["text2img.object_area=0"], "one-piece": ONE_PIECE,
        "d-encoder": [*ONE_PIECE, "text2img.own_encoder=false"]}
ATTRIBUTES = ("shape", "color", "position", "background")


def run_one(job: dict) -> dict:
    """Train one row for one seed in this process (one thread) and measure it."""
    import torch

    torch.set_num_threads(1)
    import gankit
    from gankit.report.evaluate import RUN_METRICS, RunEval
    from gankit.train import Trainer, load

    extra = [f"seed={job['seed']}", f"train.steps={job['steps']}", "train.sample_every=0",
             f"train.checkpoint_every={job['steps']}", "train.log_every=50", *ROWS[job["row"]]]
    run = Path(job["out"]) / f"{job['row']}-{job['seed']}"
    start = time.perf_counter()
    Trainer(gankit.load_config("shapes32-text2img", extra), run, progress=False).fit()
    minutes = (time.perf_counter() - start) / 60
    values = RUN_METRICS["attribute_accuracy"].compute(RunEval(load(run), run, seed=job["seed"]))[0]
    return {"row": job["row"], "seed": job["seed"], "steps": job["steps"], "minutes": minutes, **values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one thread each)")
    parser.add_argument("--quick", action="store_true", help="the preset row, seed 0, 600 steps")
    parser.add_argument("--out", type=Path, default=None, help="where runs go (default: a temporary folder)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.seeds, args.steps = ["preset"], [0], args.steps or 600
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import gankit

    steps = args.steps or gankit.load_config("shapes32-text2img").train.steps
    out = args.out or Path(tempfile.mkdtemp(prefix="text2img-"))
    jobs = [{"row": r, "seed": s, "steps": steps, "out": str(out)} for r in args.rows for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, jobs))
    header = ["row", "seed", "min"] + [f"{a[:5]}" for a in ATTRIBUTES] + [f"{a[:5]}_u" for a in ATTRIBUTES] + \
             ["R@1", "R@1_u"]
    print(" | ".join(f"{h:>8}" for h in header))
    for r in results:
        cells = [r["row"], r["seed"], f"{r['minutes']:.1f}"]
        cells += [f"{r['attribute_accuracy'][a]:.3f}" for a in ATTRIBUTES]
        cells += [f"{r['attribute_accuracy_unseen'][a]:.3f}" for a in ATTRIBUTES]
        cells += [f"{r.get('r_precision', float('nan')):.3f}", f"{r.get('r_precision_unseen', float('nan')):.3f}"]
        print(" | ".join(f"{str(c):>8}" for c in cells))
    print(json.dumps({"benchmark": "text2img", "steps": steps, "machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
