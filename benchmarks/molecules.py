"""Molecules from RDKit's NCI set: SeqGAN (preset `molecules-seqgan`) beside its own maximum-likelihood stage and
copying the training set.

One seed's rows, each measured on 10,000 samples by `gankit eval` (validity, uniqueness, novelty, QED, internal
diversity; the denominators are in docs/sequences.md):

    copy        10,000 draws (with replacement) of the training molecules: what memorising scores
    mle         the preset's LSTM after its maximum-likelihood stage only (the same run, checkpointed there)
    seqgan      the whole preset: then D pre-training and policy gradient with D + RDKit validity rewards

    python benchmarks/molecules.py              # the preset as it is (about 20 minutes on 2 cores)
    python benchmarks/molecules.py --quick      # 300 MLE steps, 5 adversarial ones, 1,000 samples
    python benchmarks/molecules.py --set seqgan.chem_reward=0   # D rewards alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

SAMPLES = 10_000
COLUMNS = ("validity", "uniqueness", "novelty", "qed_mean", "internal_diversity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short schedule and 1,000 samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="keep the run here (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    import gankit
    from gankit.data import load_dataset
    from gankit.metrics.sequences import molecules
    from gankit.report.evaluate import evaluate_run

    overrides = [f"seed={args.seed}", *args.overrides]
    if args.quick:
        overrides += ["seqgan.mle_steps=300", "seqgan.d_pretrain_steps=20", "train.steps=325"]
    cfg = gankit.load_config("molecules-seqgan", overrides)
    o = cfg.options
    n = 1000 if args.quick else SAMPLES
    run = Path(args.out or tempfile.mkdtemp(prefix="molecules-")) / f"seqgan-{args.seed}"
    rows: dict[str, dict] = {}

    data = load_dataset(cfg.data, cfg.seed)
    training = data.info["texts"]
    rng = random.Random(args.seed)
    rows["copy"] = molecules([rng.choice(training) for _ in range(n)], set(training))

    mle_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": o.mle_steps})})
    start = time.perf_counter()
    gankit.train(mle_cfg, run, progress=False)
    seconds = {"mle": time.perf_counter() - start}
    rows["mle"] = {k: v for k, v in evaluate_run(run, seed=args.seed, n=n).items() if k in COLUMNS}
    start = time.perf_counter()
    gankit.train(cfg, run, resume=True, progress=False)
    seconds["seqgan"] = seconds["mle"] + time.perf_counter() - start
    rows["seqgan"] = {k: v for k, v in evaluate_run(run, seed=args.seed, n=n).items() if k in COLUMNS}

    print(f"molecules-seqgan, seed {args.seed}, {n} samples each; overrides {args.overrides or 'none'}")
    print(f"{'row':<10}" + "".join(f"{c:>20}" for c in COLUMNS) + f"{'minutes':>10}")
    for name, values in rows.items():
        minutes = f"{seconds[name] / 60:.1f}" if name in seconds else "-"
        print(f"{name:<10}" + "".join(f"{values[c]:>20.3f}" for c in COLUMNS) + f"{minutes:>10}")
    print(json.dumps({"seed": args.seed, "samples": n, "overrides": args.overrides, "rows": rows,
                      "seconds": seconds, "threads": torch.get_num_threads(),
                      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}))


if __name__ == "__main__":
    main()
