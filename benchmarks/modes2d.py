"""Mode collapse on toy 2D data, PacGAN protocol: ring8 (8 modes, radius 1, std 0.01) and grid25 (25 modes, std 0.05).

Each method trains from its preset plus overrides for several seeds; 2,500 samples per trained generator are scored
(high quality = within 3 std of the nearest mode; a mode is captured if it has one high-quality sample; reverse KL of
the mode histogram to uniform). Published numbers (Lin et al. 2018, PacGAN, Table 1 / Table 2) are printed beside.
The table's ± is the standard error of the mean over seeds, as in PacGAN's tables; the JSON line after it holds the
mean, std (`_std`) and standard error (`_sem`) of each column.

`--refine drs,mh` adds rows for discriminator-guided samples of the same trained generators (docs/refine.md), with
the acceptance rate and the G+D passes per kept sample. Besides the two benchmark sets, ring12 / grid16 / grid36 are
variations that no preset was tuned on: a method that only works on 8 and 25 modes shows there.

    python benchmarks/modes2d.py                  # 10 seeds, every method, both sets (about an hour on 2 cores)
    python benchmarks/modes2d.py --quick          # 2 seeds
    python benchmarks/modes2d.py --sets ring8 --methods "gankit best" --seeds 10 --refine drs,mh
    python benchmarks/modes2d.py --sets ring12,grid16,grid36 --methods "gankit best" --seeds 3 --refine drs,mh
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SETS = {  # name -> (vanilla preset, best preset, overrides of both): the benchmark sets, then untuned variations
    "ring8": ("ring8-gan", "ring8-best", []), "grid25": ("grid25-gan", "grid25-best", []),
    "ring12": ("ring8-gan", "ring8-best", ["data.modes=12", "data.radius=2"]),
    "grid16": ("grid25-gan", "grid25-best", ["data.size=4"]), "grid36": ("grid25-gan", "grid25-best", ["data.size=6"]),
}
REFINEMENTS = ("drs", "mh")
METHODS = {  # name -> (use the best preset?, overrides)
    "GAN (minimax)": (False, ["loss.name=minimax"]),
    "GAN (non-saturating)": (False, ["loss.name=non_saturating"]),
    "WGAN-GP": (False, ["loss.name=wasserstein", "loss.gp_weight=0.1", "train.n_critic=5", "optim.lr_d=1e-4",
                        "optim.lr_g=1e-4", "optim.beta2=0.9"]),
    "hinge + SN": (False, ["loss.name=hinge", "model.spectral_norm=true"]),
    "PacGAN2": (False, ["model.pack=2"]),
    "PacGAN3": (False, ["model.pack=3"]),
    "PacGAN4": (False, ["model.pack=4"]),
    "gankit best": (True, []),
}
PUBLISHED = {  # (set, method) -> (modes, high-quality %, reverse KL): PacGAN paper, Table 1 (means of 10 trials)
    ("ring8", "GAN"): (6.3, 98.2, 0.45), ("ring8", "ALI"): (6.6, 97.6, 0.36),
    ("ring8", "PacGAN2"): (7.9, 95.6, 0.07), ("ring8", "PacGAN3"): (7.8, 97.7, 0.10),
    ("ring8", "PacGAN4"): (7.8, 95.9, 0.07),
    ("grid25", "GAN"): (17.3, 94.8, 0.70), ("grid25", "ALI"): (24.1, 95.7, 0.14),
    ("grid25", "PacGAN2"): (23.8, 91.3, 0.13), ("grid25", "PacGAN3"): (24.6, 94.2, 0.06),
    ("grid25", "PacGAN4"): (24.8, 93.6, 0.04),
}


def trial(job: tuple[str, str, int, list[str], tuple[str, ...], str | None]) -> list[dict]:
    """Train one (set, method, seed) and score 2,500 samples: plain, then refined. The run directory is temporary
    unless `keep` names a folder to keep it in (as SET-METHOD-SEED)."""
    import torch

    torch.set_num_threads(1)  # two single-threaded workers beat one two-threaded run for these small MLPs
    import gankit

    set_name, method, seed, _, _, keep = job[:6]
    cfg = job_config(job)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(keep) / f"{set_name}-{method.replace(' ', '_')}-{seed}" if keep else scratch
        start = time.perf_counter()
        gankit.train(cfg, tmp, progress=False)
        return score(tmp, job, seed, fingerprint(cfg), time.perf_counter() - start)


def score(run: Path, job: tuple, seed: int, config: str, seconds: float) -> list[dict]:
    """Rows for one trained run: 2,500 plain samples scored, then 2,500 of each refinement; `seconds` (training)
    is added to each row's own sampling time."""
    import torch

    import gankit
    from gankit.metrics import modes2d

    set_name, method, refine = job[0], job[1], job[4]
    gen = gankit.load(run)
    centers, std = torch.tensor(gen.spec["centers"]), gen.spec["std"]
    rows = []
    for kind in ("plain", *refine):
        start = time.perf_counter()
        if kind == "plain":
            samples, cost = gen.sample(2500, seed=10_000 + seed), {"acceptance": 1.0, "g_evals_per_sample": 1.0}
        else:
            samples, stats = gen.refined(kind, 2500, seed=10_000 + seed)
            cost = stats.as_dict()
        report = modes2d(samples, centers, std)
        rows.append({"set": set_name, "method": label(method, kind), "seed": seed, "config": config,
                     "modes": report.modes, "hq": report.hq_fraction, "rkl": report.reverse_kl,
                     "acceptance": cost["acceptance"], "passes": cost["g_evals_per_sample"],
                     "seconds": seconds + time.perf_counter() - start, "samples": samples[:1000].tolist(),
                     "centers": centers.tolist()})
    return rows


def ensemble_trial(job: tuple) -> list[dict]:
    """Train `members` seeds of one (set, method) as one ensemble run (model.members, each member with the preset's
    batch), split it, and score each member as `trial` scores a run; a member's seconds are the ensemble's training
    time divided by the members, plus its own scoring. The job's seed is the first member's."""
    import torch

    torch.set_num_threads(job[7])
    import gankit
    from gankit.train.ensemble import split_members

    set_name, method, first, _, _, keep, members, _ = job
    cfg = job_config(job)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(keep) / f"{set_name}-{method.replace(' ', '_')}-ensemble-{first}" if keep else Path(scratch)
        start = time.perf_counter()
        gankit.train(cfg, root / "ensemble", progress=False)
        share = (time.perf_counter() - start) / members
        runs = split_members(root / "ensemble", root / "members")
        return [row for e, run in enumerate(runs) for row in score(run, job, first + e, fingerprint(cfg), share)]


def label(method: str, kind: str) -> str:
    """A table row's name: the method, with the refinement after it."""
    return method if kind == "plain" else f"{method} + {kind.upper()}"


def method_order(name: str) -> tuple[int, int]:
    """Where a row name sorts: its method's place in METHODS, then plain before each refinement."""
    method, _, kind = name.partition(" + ")
    return list(METHODS).index(method), ("", *map(str.upper, REFINEMENTS)).index(kind)


def row_order(key: tuple[str, str]) -> tuple[int, int, int]:
    return list(SETS).index(key[0]), *method_order(key[1])


def job_config(job: tuple):
    """The resolved config of one (set, method, seed, extra overrides, ...) trial."""
    import gankit

    set_name, method, seed, overrides = job[:4]
    best, extra = METHODS[method]
    vanilla, tuned, variation = SETS[set_name]
    return gankit.load_config(tuned if best else vanilla, [*variation, *extra, *overrides, f"seed={seed}",
                                                          "train.sample_every=0", "train.checkpoint_every=0"])


def fingerprint(cfg) -> str:
    """Hash of the resolved config: a stored trial is reused only if its preset and overrides still resolve to it.

    Keys at their defaults are left out, so a new config key (off by default) does not invalidate stored trials.
    """
    dump = cfg.model_dump(mode="json", exclude_defaults=True)
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def _read_rows(path: Path) -> dict[tuple[str, str, int, str], dict]:
    """Trials finished earlier, by (set, method, seed, config fingerprint)."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["set"], r["method"], r["seed"], r["config"]): r for r in rows if "config" in r}


def summarise(rows: list[dict]) -> dict:
    """(mean, std, standard error of the mean) over seeds of modes, high-quality fraction and reverse KL, the max
    seconds per trial (refinement included), mean acceptance and passes. One seed has no spread: std and sem are nan."""
    def stats(key: str) -> tuple[float, float, float]:
        vals = [r[key] for r in rows]
        if not all(math.isfinite(v) for v in vals):  # reverse KL is infinite when a trial has no HQ sample
            return math.inf, math.nan, math.nan
        std = statistics.stdev(vals) if len(vals) > 1 else math.nan
        return statistics.fmean(vals), std, std / math.sqrt(len(vals))
    return {"modes": stats("modes"), "hq": stats("hq"), "rkl": stats("rkl"),
            "max_seconds": max(r["seconds"] for r in rows), "seeds": len(rows),
            "acceptance": statistics.fmean(r.get("acceptance", 1.0) for r in rows),
            "passes": statistics.fmean(r.get("passes", 1.0) for r in rows)}


def plus_minus(stats: tuple[float, float, float], digits: int, scale: float = 1.0) -> str:
    """A table cell: mean ± standard error (PacGAN's ±), the mean alone for one seed, ∞ for an infinite mean."""
    mean, _, sem = stats
    if not math.isfinite(mean):
        return "∞"
    return f"{scale * mean:.{digits}f}" + (f" ± {scale * sem:.{digits}f}" if math.isfinite(sem) else "")


def json_summary(sm: dict) -> dict:
    """The JSON line's entry for one row: each column's mean, `_std` and `_sem`, null where not finite."""
    out: dict = {}
    for key, name, digits in (("modes", "modes", 3), ("hq", "hq", 4), ("rkl", "reverse_kl", 4)):
        for suffix, value in zip(("", "_std", "_sem"), sm[key]):
            out[name + suffix] = round(value, digits) if math.isfinite(value) else None
    return {**out, "max_seconds": round(sm["max_seconds"], 1), "seeds": sm["seeds"],
            "acceptance": round(sm["acceptance"], 3), "passes": round(sm["passes"], 2)}


def scatter(results: dict[tuple[str, str], list[dict]], path: Path) -> None:
    """One panel per (set, method): 1,000 generated points of the first seed over the mode centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from gankit.data import grid_centers, ring_centers

    sets = sorted({s for s, _ in results}, key=list(SETS).index)
    methods = sorted({m for _, m in results}, key=method_order)
    fig, axes = plt.subplots(len(sets), len(methods), figsize=(2.2 * len(methods), 2.3 * len(sets)), squeeze=False)
    centers = {"ring8": ring_centers(8), "grid25": grid_centers(5)}  # rows stored before they carried their centres
    for i, s in enumerate(sets):
        for j, m in enumerate(methods):
            ax = axes[i][j]
            rows = results.get((s, m))
            if rows:
                pts = torch.tensor(rows[0]["samples"])
                modes = torch.tensor(rows[0]["centers"]) if "centers" in rows[0] else centers[s]
                ax.scatter(*pts.T, s=1, c="#d9480f", alpha=0.5)
                ax.scatter(*modes.T, s=12, marker="x", c="black", linewidths=0.8)
                ax.set_title(f"{m}\n{rows[0]['modes']} modes, {rows[0]['hq']:.0%} HQ", fontsize=7)
            lim = 1.3 * float(modes.abs().max()) + 0.3 if rows else 1.5
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
            ax.set_xticks([]), ax.set_yticks([])
        axes[i][0].set_ylabel(s)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds instead of 10")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (split a run across machines "
                        "or processes that share --rows)")
    parser.add_argument("--sets", default="ring8,grid25")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated names from the table")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--plot", default=None, help="write a scatter-plot PNG here")
    parser.add_argument("--set-override", action="append", default=[], help="extra key=value for every trial")
    parser.add_argument("--refine", default="", help="also score refined samples of each trained G: drs, mh or "
                        "drs,mh (docs/refine.md)")
    parser.add_argument("--keep-runs", default=None, help="keep each trained run in this folder (to refine or "
                        "inspect later) instead of a temporary one")
    parser.add_argument("--rows", type=Path, default=None, help="JSONL of finished trials: each trial is appended "
                        "when it ends, and trials already in it with the same resolved config are not run again "
                        "(resume a cut-off run, or add methods and seeds to an earlier one; a changed preset reruns "
                        "its trials); the table covers every row in it that was asked for")
    parser.add_argument("--ensemble", action="store_true", help="train each (set, method)'s seeds as one ensemble "
                        "run (model.members = seeds, each member with the preset's batch) and split it: seconds per "
                        "trial are the ensemble's divided by its members")
    parser.add_argument("--table-only", action="store_true", help="with --rows: print the table and plot of the "
                        "trials already there, without running the missing ones")
    args = parser.parse_args()
    if args.table_only and not args.rows:
        parser.error("--table-only needs --rows FILE.jsonl")
    seeds = args.seeds or (2 if args.quick else 10)
    sets, methods = args.sets.split(","), [m.strip() for m in args.methods.split(",")]
    refine = tuple(k for k in args.refine.split(",") if k)
    if set(refine) - set(REFINEMENTS):
        parser.error(f"--refine takes {', '.join(REFINEMENTS)}, got {args.refine!r}")
    unknown = [s for s in sets if s not in SETS] + [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown set or method {unknown[0]!r}; sets: {', '.join(SETS)}; methods: {', '.join(METHODS)}")
    if args.ensemble:  # one job per (set, method): its seeds are the ensemble's members
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        jobs = [(s, m, args.first_seed, [*args.set_override, f"model.members={seeds}", "train.batch_size="
                 f"{seeds * job_config((s, m, 0, args.set_override)).train.batch_size}"], refine, args.keep_runs,
                 seeds, threads) for s in sets for m in methods]
    else:
        jobs = [(s, m, seed, args.set_override, refine, args.keep_runs) for s in sets for m in methods
                for seed in range(args.first_seed, args.first_seed + seeds)]
    results: dict[tuple[str, str], list[dict]] = {}
    finished = _read_rows(args.rows) if args.rows else {}
    wanted = {job[:3]: [(job[0], label(job[1], kind), seed, fingerprint(job_config(job)))
                        for seed in range(job[2], job[2] + (seeds if args.ensemble else 1))
                        for kind in ("plain", *refine)] for job in jobs}
    todo = []
    for job in jobs:
        if all(key in finished for key in wanted[job[:3]]):
            for key in wanted[job[:3]]:
                results.setdefault(key[:2], []).append(finished[key])
        else:
            todo.append(job)
    jobs = [] if args.table_only else todo
    with ProcessPoolExecutor(args.workers) as pool:
        for done, rows in enumerate(pool.map(ensemble_trial if args.ensemble else trial, jobs), 1):
            for row in rows:
                results.setdefault((row["set"], row["method"]), []).append(row)
            if args.rows:
                with args.rows.open("a") as f:
                    f.writelines(json.dumps(row) + "\n" for row in rows)
            seeds_done = sorted({row["seed"] for row in rows})
            by_method: dict[str, list[dict]] = {}
            for row in rows:
                by_method.setdefault(row["method"], []).append(row)
            print(f"[{done}/{len(jobs)}] {rows[0]['set']} seed{'s' if len(seeds_done) > 1 else ''} "
                  f"{seeds_done[0]}{f'-{seeds_done[-1]}' if len(seeds_done) > 1 else ''}: "
                  + ", ".join(f"{m} {statistics.fmean(r['modes'] for r in rs):.2f} modes "
                              f"{statistics.fmean(r['hq'] for r in rs):.1%} HQ" for m, rs in by_method.items())
                  + f", {max(r['seconds'] for r in rows):.0f} s", file=sys.stderr, flush=True)
    ran = f"trials read from {args.rows}" if args.table_only else \
        f"{len(jobs)} ensemble runs of {seeds} members, {args.workers} workers" if args.ensemble else \
        f"{args.workers} workers x 1 thread"
    print(f"PacGAN 2D protocol, up to {seeds} seeds per row, 2,500 samples each; {ran}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; ± is the standard error over seeds")
    print(f"{'set':<8}{'method':<30}{'seeds':>6}{'modes':>15}{'high quality %':>18}{'reverse KL':>17}{'s/trial':>9}"
          f"{'accept':>8}{'passes':>8}")
    summary = {}
    for s, m in sorted(results, key=row_order):
        sm = summarise(results[(s, m)])
        summary[f"{s}/{m}"] = sm
        print(f"{s:<8}{m:<30}{sm['seeds']:>6}{plus_minus(sm['modes'], 2):>15}{plus_minus(sm['hq'], 1, 100):>18}"
              f"{plus_minus(sm['rkl'], 3):>17}{sm['max_seconds']:>9.0f}{sm['acceptance']:>8.2f}{sm['passes']:>8.1f}")
    for (s, m), (modes, hq, rkl) in PUBLISHED.items():
        if s in sets:
            print(f"{s:<8}{m + ' (published)':<30}{'':6}{modes:>15.1f}{hq:>18.1f}{rkl:>17.2f}")
    if args.plot:
        scatter(results, Path(args.plot))
        print(f"scatter plot: {args.plot}")
    print(json.dumps({k: json_summary(v) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
