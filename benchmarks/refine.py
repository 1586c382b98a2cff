"""Discriminator-guided sampling on the mode-collapse benchmark: plain vs DRS vs MH samples of the same trained G.

Each trial trains one preset with one seed (as `gankit train PRESET seed=S`), then scores 2,500 samples of each kind
with the PacGAN mode protocol, and reports what refinement cost (acceptance, G/D passes per kept sample, seconds).
Besides the benchmark sets, toy sets that no preset was tuned on check that the method generalises.

    python benchmarks/refine.py --seeds 10                 # ring8-best and grid25-best, 10 seeds each
    python benchmarks/refine.py --quick                    # 1 seed, shortened training, a few minutes
    python benchmarks/refine.py --sets ring12,grid16,grid36 --seeds 3   # sets no preset was tuned on

Prints a table (mean ± standard error over seeds) and, as its last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

SETS = {  # name -> (preset, overrides): the two benchmark sets and held-out variations of them
    "ring8": ("ring8-best", []), "grid25": ("grid25-best", []),
    "ring12": ("ring8-best", ["data.modes=12", "data.radius=2"]), "grid16": ("grid25-best", ["data.size=4"]),
    "grid36": ("grid25-best", ["data.size=6"]),
}
KINDS = ("plain", "drs", "mh")


def trial(job: tuple[str, int, list[str]]) -> list[dict]:
    """Train one (set, seed), then score plain, DRS and MH samples of its generator."""
    import torch

    torch.set_num_threads(1)
    import gankit
    from gankit.metrics import modes2d

    set_name, seed, extra = job
    preset, overrides = SETS[set_name]
    cfg = gankit.load_config(preset, [*overrides, *extra, f"seed={seed}", "train.sample_every=0"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        gankit.train(cfg, tmp, progress=False)
        train_seconds = time.perf_counter() - start
        gen = gankit.load(tmp)
        centers, std = torch.tensor(gen.spec["centers"]), gen.spec["std"]
        for kind in KINDS:
            start = time.perf_counter()
            if kind == "plain":
                samples, cost = gen.sample(2500, seed=10_000 + seed), {"acceptance": 1.0, "g_evals_per_sample": 1.0}
            else:
                samples, stats = gen.refined(kind, 2500, seed=10_000 + seed)
                cost = stats.as_dict()
            report = modes2d(samples, centers, std)
            rows.append({"set": set_name, "seed": seed, "kind": kind, "modes": report.modes,
                         "total_modes": report.total_modes, "hq": report.hq_fraction, "rkl": report.reverse_kl,
                         "acceptance": cost["acceptance"], "passes": cost["g_evals_per_sample"],
                         "sample_seconds": time.perf_counter() - start, "train_seconds": train_seconds})
    return rows


def summarise(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """(set, kind) -> mean and standard error of each figure over seeds."""
    out: dict[tuple[str, str], dict] = {}
    for key in sorted({(r["set"], r["kind"]) for r in rows}, key=lambda k: (k[0], KINDS.index(k[1]))):
        group = [r for r in rows if (r["set"], r["kind"]) == key]
        entry = {"seeds": len(group), "total_modes": group[0]["total_modes"]}
        for field in ("modes", "hq", "rkl", "acceptance", "passes", "sample_seconds", "train_seconds"):
            values = [r[field] for r in group]
            mean = statistics.fmean(values)
            sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
            entry[field], entry[f"{field}_sem"] = mean, sem
        out[key] = entry
    return out


def _pm(mean: float, sem: float, fmt: str) -> str:
    return f"{mean:{fmt}}" + (f" ± {sem:{fmt}}" if math.isfinite(sem) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sets", default="ring8,grid25", help=f"comma-separated, from: {', '.join(SETS)}")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true", help="1 seed of ring8 with 1,500 training steps")
    parser.add_argument("--set-override", action="append", default=[], help="extra key=value for every trial")
    args = parser.parse_args()
    sets = ["ring8"] if args.quick else args.sets.split(",")
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        parser.error(f"unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")
    extra = [*args.set_override, *(["train.steps=1500"] if args.quick else [])]
    jobs = [(s, seed, extra) for s in sets for seed in range(1 if args.quick else args.seeds)]
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for done in pool.map(trial, jobs):
            rows += done
            r = done[0]
            print(f"{r['set']} seed {r['seed']}: " + ", ".join(f"{d['kind']} {d['hq']:.1%}" for d in done),
                  flush=True)
    table = summarise(rows)
    print(f"\n{'set':<8} {'sampling':<8} {'seeds':>5} {'modes':>13} {'high quality':>16} {'reverse KL':>16} "
          f"{'accept':>7} {'passes':>7} {'s/2.5k':>7}")
    for (set_name, kind), e in table.items():
        print(f"{set_name:<8} {kind:<8} {e['seeds']:>5} {_pm(e['modes'], e['modes_sem'], '.2f'):>13} "
              f"{_pm(100 * e['hq'], 100 * e['hq_sem'], '.1f'):>14} % {_pm(e['rkl'], e['rkl_sem'], '.3f'):>16} "
              f"{e['acceptance']:>7.3f} {e['passes']:>7.1f} {e['sample_seconds']:>7.1f}")
    print(json.dumps({f"{s}_{k}": {f: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                   for f, v in e.items()} for (s, k), e in table.items()}))


if __name__ == "__main__":
    main()
