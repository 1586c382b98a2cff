"""Preset budgets: projected training time of each image and video preset at its default length vs `digits-dcgan`.

Each preset trains a short run in this process (same threads, same machine state); its speed is the median of the
logged steps/s windows after the first (start-up excluded), and its projected time is preset steps / that speed.
`digits-dcgan`, the demo, is the baseline measured in the same run: `vs_demo` is a preset's time per step over the
demo's. Sample grids and checkpoints are left out of the projection (a few seconds per preset).

    python benchmarks/presets.py            # 100 steps per preset
    python benchmarks/presets.py --quick    # 20 steps per preset
    python benchmarks/presets.py --presets shapes32-stylegan   # one preset (and the baseline)

A preset that grows (shapes32-pggan) is measured at its final side throughout: its projection is an upper bound. A
preset with `train.restarts` is measured as one run, and its length counts the other candidates' steps too.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

import gankit
from gankit.train import make_trainer
from gankit.train.logging import read_logs

BASELINE = "digits-dcgan"
PRESETS = [BASELINE, "digits-cgan", "digits-acgan", "digits-infogan", "shapes-dcgan", "shapes-biggan", "shapes-pix2pix",
           "shapes-srresnet", "shapes-cyclegan", "digits-cyclegan", "shapes32-pggan", "shapes32-stylegan",
           "digits-stylegan", "shapes32-text2img", "moving-shapes-video"]
BUDGET_MIN = 20.0  # issue target: every preset of the conditional family within 20 minutes on 2 CPU cores
BUDGETS = {"shapes32-pggan": 30.0, "shapes32-stylegan": 30.0, "digits-stylegan": 30.0,  # the style family's issue
           "shapes32-text2img": 30.0, "moving-shapes-video": 30.0}  # the text-to-image and video issue
# measured at the final side for every step: an upper bound for a preset that grows
MEASURE_WITH = {"shapes32-pggan": ["pggan.start_resolution=32"]}


def steps_per_second(preset: str, steps: int, root: Path) -> float:
    """Median logged steps/s of a `steps`-step run of `preset`, the first log window (start-up) left out."""
    window = max(1, steps // 5)
    cfg = gankit.load_config(preset, [f"train.steps={steps}", "train.restarts=1", f"train.log_every={window}",
                                      "train.sample_every=0", f"train.checkpoint_every={steps}",
                                      *MEASURE_WITH.get(preset, [])])
    make_trainer(cfg, root / preset, progress=False).fit()
    rates = [r["it_s"] for r in read_logs(root / preset / "logs.jsonl") if "it_s" in r][1:]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 steps per preset")
    parser.add_argument("--steps", type=int, default=None, help="steps per preset (default 100, 20 with --quick)")
    parser.add_argument("--presets", nargs="+", default=None, help="only these (the demo baseline is always run)")
    args = parser.parse_args()
    steps = args.steps or (20 if args.quick else 100)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in [BASELINE, *[p for p in (args.presets or PRESETS) if p != BASELINE]]:
            rate = steps_per_second(preset, steps, Path(tmp))
            train = gankit.load_config(preset).train
            length = train.steps + (train.restarts - 1) * train.restart_steps  # the winner continues its own steps
            rows[preset] = {"steps": length, "steps_per_s": round(rate, 3), "minutes": round(length / rate / 60, 2)}
    base = rows[BASELINE]["steps_per_s"]
    for row in rows.values():
        row["vs_demo"] = round(base / row["steps_per_s"], 2)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"{steps} measured steps per preset")
    print(f"{'preset':20} {'steps':>6} {'steps/s':>8} {'x demo':>7} {'minutes':>8}  budget")
    for name, row in rows.items():
        verdict = "ok" if row["minutes"] <= BUDGETS.get(name, BUDGET_MIN) else "OVER"
        print(f"{name:20} {row['steps']:>6} {row['steps_per_s']:>8.2f} {row['vs_demo']:>7.2f} {row['minutes']:>8.2f}"
              f"  {verdict}")
    print(json.dumps({"threads": torch.get_num_threads(), "measured_steps": steps, "budget_minutes": BUDGET_MIN,
                      "budgets": BUDGETS, "measured_with": MEASURE_WITH,
                      "presets": rows}))


if __name__ == "__main__":
    main()
