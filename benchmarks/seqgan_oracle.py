"""SeqGAN's synthetic benchmark: how close do generators come to an LSTM oracle, measured by the oracle itself?

gankit's oracle (gankit.data.text.Oracle: an LSTM with every weight N(0, 1) from the run's seed, vocabulary 5,000,
length 20, width 32) draws 10,000 training sequences; each generator then draws 10,000 sequences, scored by their
mean negative log-likelihood per token under the oracle (NLL-oracle, nats; lower is closer to the oracle). Rows, per
seed, all from the preset `oracle-seqgan` with the same networks and batch:

    random      G before any training
    mle         maximum likelihood for as many G steps as SeqGAN takes in all (its pre-training + adversarial)
    mle@pre     the same run at the end of SeqGAN's pre-training (what SeqGAN starts from)
    ss          scheduled sampling (Bengio et al. 2015) over the pre-training steps
    seqgan      pre-training, D pre-training, then policy gradient with Monte-Carlo rollouts
    oracle      the oracle's own samples (the floor)

Curves (NLL-oracle of 1,000 fixed samples logged every `sample_every` steps) go into the JSON. Each run is its own
process with one torch thread; `--jobs` runs that many at once.

    python benchmarks/seqgan_oracle.py                 # 3 seeds, the preset's schedule
    python benchmarks/seqgan_oracle.py --quick         # 1 seed, a short schedule
    python benchmarks/seqgan_oracle.py --set seqgan.rollouts=8 --seeds 0 1
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

import numpy as np

SAMPLES = 10_000


def schedule(quick: bool) -> dict[str, int]:
    if quick:
        return {"mle_steps": 300, "d_pretrain_steps": 100, "adversarial": 10}
    return {"mle_steps": 1500, "d_pretrain_steps": 1000, "adversarial": 100}


def configs(seed: int, s: dict[str, int], extra: list[str]) -> dict:
    """The config of each trained row for one seed."""
    import gankit

    total = s["mle_steps"] + s["d_pretrain_steps"] + s["adversarial"]
    common = [f"seed={seed}", f"seqgan.d_pretrain_steps={s['d_pretrain_steps']}", "train.sample_every=50",
              f"train.checkpoint_every={s['mle_steps']}", "train.keep_checkpoints=10", *extra]
    rows = {"mle": [f"seqgan.mle_steps={total}", f"train.steps={total}"],
            "ss": [f"seqgan.mle_steps={s['mle_steps']}", f"train.steps={s['mle_steps']}",
                   "seqgan.scheduled_sampling=0.25"],
            "seqgan": [f"seqgan.mle_steps={s['mle_steps']}", f"train.steps={total}"]}
    return {name: gankit.load_config("oracle-seqgan", [*common, *more]) for name, more in rows.items()}


def run_one(job: dict) -> list[dict]:
    """Train and measure one seed's rows (in a process of its own). SeqGAN starts from the MLE run's checkpoint at
    the end of pre-training: up to there the two runs are the same computation (same seed, same phases)."""
    import shutil

    import torch

    torch.set_num_threads(1)
    import gankit
    from gankit.config import to_yaml
    from gankit.data import load_dataset
    from gankit.data.text import build_oracle
    from gankit.metrics.sequences import nll_oracle
    from gankit.variants import Request, build_variant

    s, seed, out, n = job["schedule"], job["seed"], Path(job["out"]), job["samples"]
    cfgs = configs(seed, s, job["overrides"])
    data = load_dataset(cfgs["mle"].data, seed)
    spec = data.spec()
    results = [{"seed": seed, "method": "oracle",
                "nll_oracle": nll_oracle(build_oracle(spec).sample(n, cfgs["mle"].data.length, 10_000 + seed), spec)}]
    torch.manual_seed(seed)
    untrained = build_variant(cfgs["mle"], spec)
    x = untrained.generate(Request(n, generator=torch.Generator().manual_seed(seed)))
    results.append({"seed": seed, "method": "random", "nll_oracle": nll_oracle(x, spec)})

    def measure(method: str, run: Path, seconds: float) -> dict:
        gen = gankit.load(run)
        records = [json.loads(line) for line in (run / "logs.jsonl").read_text().splitlines()]
        curve = [(r["step"], round(r["nll_oracle"], 4)) for r in records if "nll_oracle" in r]
        return {"seed": seed, "method": method, "seconds": round(seconds, 1), "curve": curve,
                "nll_oracle": nll_oracle(gen.sample(n, seed=seed), gen.spec)}

    start = time.perf_counter()
    mle = out / f"mle-{seed}"
    cut = cfgs["mle"].model_copy(update={"train": cfgs["mle"].train.model_copy(update={"steps": s["mle_steps"]})})
    gankit.train(cut, mle, progress=False)  # pre-training, checkpointed at its end
    pre_seconds = time.perf_counter() - start
    adv = out / f"seqgan-{seed}"
    shutil.copytree(mle, adv)
    (adv / "config.yaml").write_text(to_yaml(cfgs["seqgan"]))
    start = time.perf_counter()
    gankit.train(cfgs["mle"], mle, resume=True, progress=False)
    results.append(measure("mle", mle, pre_seconds + time.perf_counter() - start))
    results[-1]["at_pretraining_end"] = dict(results[-1]["curve"]).get(s["mle_steps"])
    start = time.perf_counter()
    gankit.train(cfgs["seqgan"], adv, resume=True, progress=False)
    results.append(measure("seqgan", adv, pre_seconds + time.perf_counter() - start))
    if job["ss"]:
        start = time.perf_counter()
        gankit.train(cfgs["ss"], out / f"ss-{seed}", progress=False)
        results.append(measure("ss", out / f"ss-{seed}", time.perf_counter() - start))
    return results


def plot_curves(figures: dict, path: str) -> None:
    """NLL-oracle of the fixed samples over training steps, one panel per seed: MLE, SeqGAN, scheduled sampling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = figures["seeds"]
    fig, axes = plt.subplots(1, len(seeds), figsize=(4 * len(seeds), 3.2), dpi=90, squeeze=False)
    colours = {"mle": "#1c7ed6", "seqgan": "#d9480f", "ss": "#2b8a3e"}
    for ax, seed in zip(axes[0], seeds):
        runs = [r for r in figures["runs"] if r["seed"] == seed]
        for r in runs:
            if r.get("curve"):
                steps, values = zip(*r["curve"])
                ax.plot(steps, values, color=colours[r["method"]], label=r["method"], lw=1.2)
        ax.axvline(figures["schedule"]["mle_steps"], color="#adb5bd", lw=0.8)  # SeqGAN leaves MLE here
        floor = next((r["nll_oracle"] for r in runs if r["method"] == "oracle"), None)
        ax.set_title(f"seed {seed}" + (f" (oracle's own samples: {floor:.2f})" if floor else ""), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylim(None, 10)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("NLL-oracle (1,000 fixed samples)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, a short schedule, 2,000 samples")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (quick: 0)")
    parser.add_argument("--no-ss", action="store_true", help="leave out the scheduled-sampling row")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one torch thread each)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides of the preset for every run")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--plot", default=None, metavar="FILE.png", help="also draw the curves")
    args = parser.parse_args()
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    s = schedule(args.quick)
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="seqgan-oracle-"))
    jobs = [{"seed": seed, "schedule": s, "out": str(folder), "overrides": args.overrides, "ss": not args.no_ss,
             "samples": 2000 if args.quick else SAMPLES} for seed in seeds]
    with ProcessPoolExecutor(min(args.jobs, len(jobs))) as pool:
        results = [r for rows in pool.map(run_one, jobs) for r in rows]
    table: dict[str, list[float]] = {}
    for r in results:
        table.setdefault(r["method"], []).append(r["nll_oracle"])
        if "at_pretraining_end" in r and r["at_pretraining_end"] is not None:
            table.setdefault("mle@pre (1k fixed samples)", []).append(r["at_pretraining_end"])
    print(f"NLL-oracle (nats/token, {jobs[0]['samples']} samples; mean ± s.e. over seeds {seeds}); schedule {s}")
    print(f"{'method':<28}{'NLL-oracle':>22}")
    figures: dict = {"schedule": s, "seeds": seeds, "samples": jobs[0]["samples"], "overrides": args.overrides,
                     "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                     "runs": results}
    for method, values in table.items():
        mean, se = float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 \
            else 0.0
        print(f"{method:<28}{mean:>14.3f} ± {se:.3f}")
        figures[f"nll_oracle_{method.split(' ')[0].replace('@', '_at_')}"] = mean
    if "mle" in table and "seqgan" in table:
        gaps = [m - q for m, q in zip(table["mle"], table["seqgan"])]
        figures["gap_mle_minus_seqgan"] = float(np.mean(gaps))
        print(f"MLE - SeqGAN: {np.mean(gaps):.3f} (per seed {', '.join(f'{g:.3f}' for g in gaps)})")
    if args.plot:
        plot_curves(figures, args.plot)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
