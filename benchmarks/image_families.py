"""Image GAN families on 32×32 shapes: DCGAN, PGGAN and StyleGAN-lite with the same step budget, batch and seeds.

Every row trains on the same shapes data (the shapes-dcgan set at 32×32) with batch 32 for `--steps` steps, one
torch thread per run, and is measured with the shapes evaluator: FD-shapes (the Fréchet distance in the shapes
evaluator's features; never call it FID), precision/recall (k = 3) and perceptual path length in z (`ppl`, the
same evaluator's features in place of LPIPS). Rows:

    dcgan            shapes-dcgan at batch 32
    pggan            shapes32-pggan, its growth schedule scaled so 32×32 is reached at 60 % of the steps
    stylegan         shapes32-stylegan (width 16, mapping depth 8, mixing 0.9, path-length regularisation)
    dcgan@pggan      DCGAN given as many steps as fit in that seed's PGGAN training time, by the ratio of the
    dcgan@stylegan   two runs' training minutes in this invocation (one thread each): each family's "equal wall
                     time" baseline, run whenever `dcgan` and the family are rows and the family took longer; the
                     table shows the minutes each row took
    ablations        pggan without pixel norm / minibatch std / equalised lr, or with PGGAN's WGAN-GP + drift;
                     stylegan with mapping depth 2; stylegan without style mixing; stylegan with path-length
                     weight 512 in place of 2 (--ablations)

    python benchmarks/image_families.py --quick                  # 1 seed, 300 steps, the families + equal time
    python benchmarks/image_families.py --seeds 0 1 2 --ablations --jobs 2
    python benchmarks/image_families.py --steps 1200 --seeds 0 --rows pggan pggan-no-pixel-norm pggan-no-equalized-lr
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

BATCH = 32
ROWS = {
    "dcgan": ("shapes-dcgan", []),
    "pggan": ("shapes32-pggan", []),
    "stylegan": ("shapes32-stylegan", []),
}
FAMILIES = ("pggan", "stylegan")  # each gets a DCGAN trained for as long as it took: dcgan@pggan, dcgan@stylegan
ABLATIONS = {
    "pggan-no-pixel-norm": ("shapes32-pggan", ["pggan.pixel_norm=false"]),
    "pggan-no-minibatch-std": ("shapes32-pggan", ["model.minibatch_std=false"]),
    "pggan-no-equalized-lr": ("shapes32-pggan", ["pggan.equalized_lr=false"]),
    "stylegan-mapping-2": ("shapes32-stylegan", ["stylegan.mapping_depth=2"]),
    "stylegan-no-mixing": ("shapes32-stylegan", ["stylegan.mixing=0"]),
    "stylegan-pl-512": ("shapes32-stylegan", ["stylegan.pl_weight=512"]),
    "pggan-wgan-gp-drift": ("shapes32-pggan", ["loss.name=wasserstein", "loss.gp_weight=10", "loss.drift=0.001",
                                               "loss.r1_weight=0"]),
}


def overrides(preset: str, steps: int, seed: int, extra: list[str]) -> list[str]:
    """The shared budget, plus PGGAN's schedule scaled to it: six windows (4 stable, 8 fade+stable, 16 fade+stable,
    32 fade) in the first 60 % of the steps, then 32×32 to the end."""
    out = [f"seed={seed}", f"train.steps={steps}", f"train.batch_size={BATCH}", "train.sample_every=0",
           f"train.checkpoint_every={steps}", "train.log_every=50"]
    if preset == "shapes32-pggan":
        window = max(1, round(0.6 * steps / 6)) * BATCH
        out += [f"pggan.fade_images={window}", f"pggan.stable_images={window}"]
    return out + extra


def run_one(job: dict) -> dict:
    """Train one row for one seed in this process (one thread) and measure it."""
    import torch

    torch.set_num_threads(1)
    import gankit
    from gankit.report.evaluate import RUN_METRICS, RunEval
    from gankit.train import Trainer, load

    preset, extra = job["preset"], job["extra"]
    cfg = gankit.load_config(preset, overrides(preset, job["steps"], job["seed"], extra))
    run = Path(job["out"]) / f"{job['row']}-{job['seed']}"
    start = time.perf_counter()
    Trainer(cfg, run, progress=False).fit()
    seconds = time.perf_counter() - start
    evaluation = RunEval(load(run), run, seed=job["seed"], n=job["n"])
    values = {}
    for metric in ("features", "ppl"):
        values.update(RUN_METRICS[metric].compute(evaluation)[0])
    return {"row": job["row"], "seed": job["seed"], "steps": job["steps"], "minutes": seconds / 60,
            "fd_shapes": values["fid"], "precision": values["precision"], "recall": values["recall"],
            "ppl": values["ppl"], "ppl_w": values.get("ppl_w")}


def mean_se(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 300 steps, 500 samples")
    parser.add_argument("--steps", type=int, default=None, help="step budget of every row (default 2000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--ablations", action="store_true", help="also the ablation rows")
    parser.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                        help="only these rows (names as in the table; dcgan@pggan and dcgan@stylegan follow "
                             "from dcgan with that family)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    steps = args.steps or (300 if args.quick else 2000)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    n = 500 if args.quick else 2000
    rows = {**ROWS, **(ABLATIONS if args.ablations else {})}
    if args.rows:
        unknown = sorted(set(args.rows) - (ROWS.keys() | ABLATIONS.keys()))
        if unknown:
            parser.error(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join([*ROWS, *ABLATIONS])}")
        rows = {row: spec for row, spec in {**ROWS, **ABLATIONS}.items() if row in args.rows}
    out = Path(args.out or tempfile.mkdtemp(prefix="image-families-"))
    out.mkdir(parents=True, exist_ok=True)
    jobs = [{"row": row, "preset": preset, "extra": extra, "seed": seed, "steps": steps, "n": n, "out": str(out)}
            for seed in seeds for row, (preset, extra) in rows.items()]
    jobs.sort(key=lambda job: job["row"] != "dcgan")  # DCGAN first: its time is what the equal-time runs scale
    results: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        pending = {pool.submit(run_one, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results.append(future.result())
                seed, row = results[-1]["seed"], results[-1]["row"]
                mine = {r["row"]: r for r in results if r["seed"] == seed}
                for family in FAMILIES:
                    if row in ("dcgan", family) and {"dcgan", family} <= mine.keys():
                        more = round(steps * mine[family]["minutes"] / mine["dcgan"]["minutes"])
                        if more > steps:  # else DCGAN had at least the family's time already
                            pending.add(pool.submit(run_one, {
                                "row": f"dcgan@{family}", "preset": "shapes-dcgan", "extra": [], "seed": seed,
                                "n": n, "out": str(out), "steps": more}))
    for family in FAMILIES:
        if any(r["row"] == f"dcgan@{family}" for r in results):
            rows[f"dcgan@{family}"] = ("shapes-dcgan", [])

    print(f"{'row':<24} {'steps':>18} {'minutes':>8} {'FD-shapes':>16} {'precision':>10} {'recall':>8} {'PPL (z)':>16}")
    summary = {}
    for row in rows:
        mine = sorted((r for r in results if r["row"] == row), key=lambda r: r["seed"])
        if not mine:
            continue
        stats = {k: mean_se([r[k] for r in mine]) for k in ("minutes", "fd_shapes", "precision", "recall", "ppl")}
        summary[row] = {k: {"mean": m, "se": se} for k, (m, se) in stats.items()} | {
            "steps": [r["steps"] for r in mine]}
        fd, ppl = stats["fd_shapes"], stats["ppl"]
        seed_steps = "/".join(str(r["steps"]) for r in mine)
        print(f"{row:<24} {seed_steps:>18} {stats['minutes'][0]:>8.1f} {fd[0]:>9.1f} ± {fd[1]:<5.1f}"
              f" {stats['precision'][0]:>10.3f} {stats['recall'][0]:>8.3f} {ppl[0]:>9.0f} ± {ppl[1]:<5.0f}")
    print(json.dumps({"benchmark": "image_families", "steps": steps, "seeds": seeds, "batch": BATCH, "samples": n,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cpus, one torch thread per run, "
                                 f"{args.jobs} runs at once", "rows": summary, "runs": results}))


if __name__ == "__main__":
    main()
