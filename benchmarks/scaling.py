"""Data-parallel scaling: one process against N processes (torchrun) on this machine, same preset, same global batch.

Every configuration trains the same run with `gankit train` (`--nproc N` for N > 1); the CPU's cores are shared out
(torch threads per process = cores / N), so on one machine the question is whether N processes with fewer threads
each beat one process with all of them. Rounds alternate between configurations; rates are the median over the
logged windows after the first (start-up excluded), and the headline `speedup` is the median over rounds of the
paired ratio N processes / 1 process.

    python benchmarks/scaling.py                       # digits-dcgan, 1 vs 2 processes, 3 rounds of 300 steps
    python benchmarks/scaling.py --quick               # 1 round of 100 steps
    python benchmarks/scaling.py --preset ring8-gan --processes 1,2 --steps 2000
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
from pathlib import Path

import torch


def train_rate(preset: str, steps: int, processes: int, threads: int, overrides: list[str]) -> float:
    """Median steps/s over the logged windows of one run (its first window, with start-up costs, left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        command = [sys.executable, "-m", "gankit", "train", preset, f"train.steps={steps}", "train.log_every=10",
                   "train.sample_every=0", "train.checkpoint_every=0", *overrides, "--out", str(run), "--no-progress"]
        command += ["--nproc", str(processes)] if processes > 1 else []
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"training failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
        rates = [r["it_s"] for r in map(json.loads, (run / "logs.jsonl").read_text().splitlines()) if "it_s" in r]
        return statistics.median(rates[1:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="digits-dcgan")
    parser.add_argument("--processes", default="1,2", help="process counts to compare, the first is the baseline")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 300, --quick 100)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args()
    counts = [int(c) for c in args.processes.split(",")]
    steps, rounds = args.steps or (100 if args.quick else 300), args.rounds or (1 if args.quick else 3)
    cores = os.cpu_count() or 1
    batch = json.loads(subprocess.run([sys.executable, "-c", "import gankit, json, sys; print(json.dumps("
                                       f"gankit.load_config({args.preset!r}, sys.argv[1:]).train.batch_size))",
                                       *args.overrides], capture_output=True, text=True, check=True).stdout)

    rates: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        for n in counts:
            rates[n].append(train_rate(args.preset, steps, n, max(1, cores // n), args.overrides))
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
    print(json.dumps({"preset": args.preset, "batch": batch, "steps": steps, "rounds": rounds, "cores": cores,
                      "processes": figures}))


if __name__ == "__main__":
    main()
