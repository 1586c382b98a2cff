"""Peak memory of `gankit eval` against the number of generated samples: flat in n beyond 10,000, since images are
generated as they are extracted, FID and IS accumulate running statistics, and KID / precision / recall keep at most
FEATURE_ROWS (10,000) generated feature rows (gankit.report.evaluate).

    python benchmarks/eval_memory.py                       # 100 (the fixed cost), 5,000, 10,000 and 50,000 samples
    python benchmarks/eval_memory.py --quick               # 100, 2,000, 10,000 and 20,000
    python benchmarks/eval_memory.py --run RUN --sizes 10000 50000

Without --run it trains a tiny digits-dcgan (width 8, 200 steps) into a temporary folder. Each evaluation is
`gankit.evaluate(RUN, n=N)` (every metric `gankit eval` computes) in a fresh process, which reports its peak resident
memory (getrusage ru_maxrss); the first size also writes the run's reference-feature cache, so all later ones read
it. Prints a table and, as the last line, a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import gankit
import torch

CHILD = """
import json, resource, sys, time
import gankit
start = time.perf_counter()
result = gankit.evaluate(sys.argv[1], n=int(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - start, "fid": result["fid"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(run: Path, n: int) -> dict:
    """Peak RSS (MiB), wall time and FID of one evaluation of n samples in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(run), str(n)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        sys.exit(f"evaluation of n={n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained image run (default: train a tiny digits-dcgan)")
    parser.add_argument("--sizes", type=int, nargs="+", help="sample counts (default: 100 5000 10000 50000); the "
                        "last two are compared")
    parser.add_argument("--quick", action="store_true", help="100, 2,000, 10,000 and 20,000 samples")
    args = parser.parse_args()
    sizes = args.sizes or ([100, 2000, 10000, 20000] if args.quick else [100, 5000, 10000, 50000])
    if len(sizes) < 2:
        parser.error("give at least two --sizes")
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "digits-tiny"
            cfg = gankit.load_config("digits-dcgan", ["model.width=8", "train.steps=200", "train.sample_every=0",
                                                      "train.checkpoint_every=0"])
            gankit.train(cfg, run, progress=False)
        rows = {n: measure(run, n) for n in sizes}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"run {args.run or 'digits-dcgan width 8, 200 steps'}")
    print(f"{'samples':>8} {'peak RSS MiB':>13} {'seconds':>8} {'FID':>9}")
    for n, row in rows.items():
        print(f"{n:>8} {row['peak_rss_mb']:>13.1f} {row['seconds']:>8.1f} {row['fid']:>9.2f}")
    small, large = sizes[-2], sizes[-1]
    summary = {"peak_rss_mb": {str(n): round(row["peak_rss_mb"], 1) for n, row in rows.items()},
               "seconds": {str(n): round(row["seconds"], 1) for n, row in rows.items()},
               "growth_mb": round(rows[large]["peak_rss_mb"] - rows[small]["peak_rss_mb"], 1),
               "ratio": round(rows[large]["peak_rss_mb"] / rows[small]["peak_rss_mb"], 3),
               "between": [small, large]}
    print(json.dumps(summary))  # the last line, for scripts


if __name__ == "__main__":
    main()
