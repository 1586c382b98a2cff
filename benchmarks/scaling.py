"""Data-parallel scaling: one process against N processes (torchrun) on this machine, same preset, same global batch.

Every configuration trains the same run with `gankit train` (`--nproc N` for N > 1); the CPU's cores are shared out
(torch threads per process = cores / N), so on one machine the question is whether N processes with fewer threads
each beat one process with all of them. Rounds alternate between configurations; rates are the median over the
logged windows after the first (start-up excluded), and the headline `speedup` is the median over rounds of the
paired ratio N processes / 1 process.

Then the same for `gankit eval -n SAMPLES` of one trained run (`--nproc N`: the processes share out the generated
samples and merge their feature statistics): wall seconds per evaluation (process start included; the reference
features are cached by a first evaluation that is not timed), the paired speedup, and whether every figure equals
the one-process figure (relative 1e-6). Only the sample-distribution metrics are shared out; the run's other metrics
(class accuracy, editing, path length, ...) run in process 0 alone with its share of the threads, so the speedup is
that of the whole `gankit eval`, not of its shared part alone.

    python benchmarks/scaling.py                       # digits-dcgan, 1 vs 2 processes, 3 rounds of 300 steps
    python benchmarks/scaling.py --quick               # 1 round of 100 steps
    python benchmarks/scaling.py --preset ring8-gan --processes 1,2 --steps 2000
    python benchmarks/scaling.py --eval-samples 0      # training only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def train_rate(preset: str, steps: int, processes: int, threads: int, overrides: list[str],
               keep: Path | None = None) -> float:
    """Median steps/s over the logged windows of one run (its first window, with start-up costs, left out); the
    run is left in `keep` when given."""
    with tempfile.TemporaryDirectory() as tmp:
        run = keep or Path(tmp) / "run"
        command = [sys.executable, "-m", "gankit", "train", preset, f"train.steps={steps}", "train.log_every=10",
                   "train.sample_every=0", "train.checkpoint_every=0", *overrides, "--out", str(run), "--no-progress"]
        command += ["--nproc", str(processes)] if processes > 1 else []
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"training failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
        rates = [r["it_s"] for r in map(json.loads, (run / "logs.jsonl").read_text().splitlines()) if "it_s" in r]
        return statistics.median(rates[1:] or rates)


SHARED = ("fid", "kid", "is", "precision", "recall", "density", "coverage")  # what the processes compute together


def eval_seconds(run: Path, samples: int, processes: int, threads: int) -> tuple[float, dict]:
    """Wall seconds of one `gankit eval RUN -n samples --json` in `processes` processes, and its figures."""
    command = [sys.executable, "-m", "gankit", "eval", str(run), "-n", str(samples), "--json"]
    command += ["--nproc", str(processes)] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"evaluation failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout)
    return seconds, {k: figures[k] for k in SHARED if k in figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits-dcgan")
    parser.add_argument("--processes", default="1,2", help="process counts to compare, the first is the baseline")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 300, --quick 100)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3, --quick 1)")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="generated samples of the timed evaluations (default 10000, --quick 2000; 0: none)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args()
    counts = [int(c) for c in args.processes.split(",")]
    steps, rounds = args.steps or (100 if args.quick else 300), args.rounds or (1 if args.quick else 3)
    cores = os.cpu_count() or 1
    batch = json.loads(subprocess.run([sys.executable, "-c", "import gankit, json, sys; print(json.dumps("
                                       f"gankit.load_config({args.preset!r}, sys.argv[1:]).train.batch_size))",
                                       *args.overrides], capture_output=True, text=True, check=True).stdout)

    samples = args.eval_samples if args.eval_samples is not None else (2000 if args.quick else 10000)
    kept = Path(tempfile.mkdtemp(prefix="scaling-")) / "run"
    rates: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(rounds):
        for n in counts:
            keep = kept if r == 0 and n == counts[0] and samples else None
            rates[n].append(train_rate(args.preset, steps, n, max(1, cores // n), args.overrides, keep))
    base = counts[0]
    print(f"{args.preset}, global batch {batch}, {steps} steps x {rounds} rounds; {cores} cores, torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'processes':>9}{'threads each':>14}{'steps/s':>10}{'images/s':>10}{'paired speedup':>16}")
    figures = {}
    for n in counts:
        rate = statistics.median(rates[n])
        speedup = statistics.median(a / b for a, b in zip(rates[n], rates[base]))
        print(f"{n:>9}{max(1, cores // n):>14}{rate:>10.2f}{rate * batch:>10.0f}{speedup:>16.3f}")
        figures[str(n)] = {"steps_per_s": round(rate, 3), "images_per_s": round(rate * batch, 1),
                           "speedup": round(speedup, 3)}
    evals = {}
    if samples:
        eval_seconds(kept, samples, 1, cores)  # writes the reference cache: not timed
        seconds: dict[int, list[float]] = {n: [] for n in counts}
        same: dict[int, bool] = {n: True for n in counts}
        for _ in range(rounds):
            base_figures = None
            for n in counts:
                took, values = eval_seconds(kept, samples, n, max(1, cores // n))
                seconds[n].append(took)
                base_figures = base_figures or values
                same[n] &= all(abs(values[k] - v) <= 1e-6 * max(abs(v), 1e-9) for k, v in base_figures.items())
        print(f"\ngankit eval -n {samples} of that run ({rounds} rounds)")
        print(f"{'processes':>9}{'threads each':>14}{'seconds':>10}{'paired speedup':>16}{'same figures':>14}")
        for n in counts:
            speedup = statistics.median(b / a for a, b in zip(seconds[n], seconds[base]))
            print(f"{n:>9}{max(1, cores // n):>14}{statistics.median(seconds[n]):>10.1f}{speedup:>16.3f}"
                  f"{str(same[n]):>14}")
            evals[str(n)] = {"seconds": round(statistics.median(seconds[n]), 2), "speedup": round(speedup, 3),
                             "same_figures": same[n]}
    print(json.dumps({"preset": args.preset, "batch": batch, "steps": steps, "rounds": rounds, "cores": cores,
                      "processes": figures, "eval_samples": samples, "eval": evals}))


if __name__ == "__main__":
    main()
