"""Federated GANs on digits: FedAvg over clients holding two digits each, against centralised training and each
client alone.

Rows, each trained with the digits-federated settings (DCGAN on 16×16 digits, batch 64) for `--steps` steps per
client, one torch thread per run:

    federated     FedAvg of G and D over 5 clients holding digits {0,1}, {2,3}, ..., {8,9} (federated.split=classes),
                  an average every 20 steps: 5 × steps client iterations in all
    centralised   one model on all the data for `steps` steps (the same steps as each client takes, a fifth of the
                  federation's compute)
    client alone  each client's model trained on its own two digits only, `steps` steps (the same split as the
                  federation's, gankit.train.federated.split_rows); the row is the mean over the 5 clients
    Flower        (--flower) the federated row again with federated.backend=flower: 5 client processes of one
                  thread each, talking to the run through Flower; `identical` says whether its model equals the
                  federated row's bit for bit, and its minutes give the cost of the processes and messages

Every model is measured as `gankit eval` measures it (the `features` run metric): FD in the digits evaluator's
features (never call it FID) against all 1,797 digits, precision and recall, from the EMA generator; and `classes`,
how many of the 10 digits the evaluator finds in at least 5 % of 1,000 samples (half a uniform share).

    python benchmarks/federated.py --quick                # 1 seed, 40 steps: the wiring, 1.5-2.5 minutes
    python benchmarks/federated.py                        # 3 seeds, 1,000 steps (the preset)
    python benchmarks/federated.py --quick --flower       # and the same federation through Flower
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

PRESET = "digits-federated"
CLASS_SAMPLES = 1000
CLASS_SHARE = 0.05  # a digit counts as drawn when at least this share of the samples is classified as it


def run_one(job: dict) -> dict:
    """Train one model (federated, centralised or one client alone) for one seed in this process and measure it."""
    import torch

    torch.set_num_threads(1)
    import gankit
    from gankit.data import load_dataset
    from gankit.report.evaluate import RUN_METRICS, RunEval
    from gankit.train import Trainer, load, make_trainer
    from gankit.train.federated import split_rows

    flower = ["federated.backend=flower"] if job["row"] == "Flower" else []
    cfg = gankit.load_config(PRESET, [f"seed={job['seed']}", f"train.steps={job['steps']}", "train.sample_every=0",
                                      "train.checkpoint_every=0", *flower])
    run = Path(job["out"]) / f"{job['row']}-{job['seed']}"
    start = time.perf_counter()
    if job["row"] in ("federated", "Flower"):
        make_trainer(cfg, run, progress=False).fit()
    else:
        fed = cfg.federated.model_copy()
        data = load_dataset(cfg.data, cfg.seed)
        if job["row"].startswith("client"):  # its rows of the federation's split, and nothing else
            data = data.subset(split_rows(data, fed, cfg.seed)[int(job["row"].split("-")[1])])
        cfg.federated.clients = 0
        Trainer(cfg, run, progress=False, dataset=data).fit()
    seconds = time.perf_counter() - start
    evaluation = RunEval(load(run), run, seed=job["seed"])
    values = RUN_METRICS["features"].compute(evaluation)[0]
    drawn = Counter(evaluation.predict(evaluation.gen.sample(CLASS_SAMPLES, seed=job["seed"])))
    classes = sum(count >= CLASS_SHARE * CLASS_SAMPLES for count in drawn.values())
    return {"row": job["row"], "seed": job["seed"], "steps": job["steps"], "minutes": seconds / 60,
            "fd_digits": values["fid"], "precision": values["precision"], "recall": values["recall"],
            "classes": classes}


def mean_se(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error (None from one value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 40 steps per client")
    parser.add_argument("--steps", type=int, default=None, help="steps per client (default 1000, the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--flower", action="store_true", help="add the federated row through Flower (the flower extra)")
    args = parser.parse_args()
    steps = args.steps or (40 if args.quick else 1000)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    out = Path(args.out or tempfile.mkdtemp(prefix="federated-"))
    out.mkdir(parents=True, exist_ok=True)
    import gankit

    clients = gankit.load_config(PRESET).federated.clients
    rows = ["federated", *(["Flower"] if args.flower else []), "centralised", *(f"client-{k}" for k in range(clients))]
    jobs = [{"row": row, "seed": seed, "steps": steps, "out": str(out)} for seed in seeds for row in rows]
    jobs.sort(key=lambda job: job["row"] not in ("federated", "Flower"))  # the longest first
    start = time.perf_counter()
    results: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        pending = {pool.submit(run_one, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            results += [future.result() for future in done]
    wall = (time.perf_counter() - start) / 60

    keys = ("minutes", "fd_digits", "precision", "recall", "classes")
    per_seed: dict[str, list[dict]] = {"federated": [], **({"Flower": []} if args.flower else {}),
                                       "centralised": [], "client alone": []}
    identical = []
    for seed in seeds:
        mine = {r["row"]: r for r in results if r["seed"] == seed}
        per_seed["federated"].append(mine["federated"])
        if args.flower:
            per_seed["Flower"].append(mine["Flower"])
            models = [(out / f"{row}-{seed}" / "model" / "model.safetensors").read_bytes()
                      for row in ("federated", "Flower")]
            identical.append(models[0] == models[1])
        per_seed["centralised"].append(mine["centralised"])
        alone = [mine[f"client-{k}"] for k in range(clients)]  # the mean over clients, one value per seed
        per_seed["client alone"].append({k: sum(r[k] for r in alone) / clients for k in keys})
    compute = {"federated": clients * steps, "Flower": clients * steps, "centralised": steps, "client alone": steps}
    print(f"{PRESET}, {steps} steps per client, seeds {seeds}; {platform.machine()}, {os.cpu_count()} cpus, one torch "
          f"thread per run, {args.jobs} runs at once ({wall:.1f} min in all)")
    print(f"{'row':<14} {'iterations':>10} {'minutes':>8} {'FD-digits':>15} {'precision':>10} {'recall':>8} "
          f"{'digits drawn':>13}")
    summary = {}
    for row, entries in per_seed.items():
        stats = {k: mean_se([r[k] for r in entries]) for k in keys}
        summary[row] = {k: {"mean": m, "se": se} for k, (m, se) in stats.items()} | {"iterations": compute[row]}
        fd, se = stats["fd_digits"][0], "-" if stats["fd_digits"][1] is None else f"{stats['fd_digits'][1]:.1f}"
        print(f"{row:<14} {compute[row]:>10} {stats['minutes'][0]:>8.1f} {fd:>8.1f} ± {se:<4} "
              f"{stats['precision'][0]:>10.3f} {stats['recall'][0]:>8.3f} {stats['classes'][0]:>13.1f}")
    if args.flower:
        print(f"Flower's model equals the simulation's bit for bit: {identical} (per seed)")
    print(json.dumps({"benchmark": "federated", "preset": PRESET, "steps": steps, "seeds": seeds, "clients": clients,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cpus, one torch thread per run, "
                                 f"{args.jobs} runs at once", "wall_minutes": wall, "rows": summary,
                      **({"flower_identical": identical} if args.flower else {}),
                      "runs": sorted(results, key=lambda r: (r["seed"], r["row"]))}))


if __name__ == "__main__":
    main()
