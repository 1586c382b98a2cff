"""Can generated images be told from real ones, and does a detector trained on one model catch another's?

A small CNN learns real digits (a seeded half of scikit-learn's digits) against samples of one model (the source);
its AUC is measured on the other half of the real digits against fresh samples of the source and of every other
model (transfer). Models: digits-dcgan, digits-vae, digits-cgan, trained here (or given with --runs).

    python benchmarks/detector.py                     # trains the three presets at their length (about 15 min)
    python benchmarks/detector.py --runs A B C        # trained runs instead (the first is the source)
    python benchmarks/detector.py --quick             # 300 training steps each: the wiring
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

import gankit
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.train import Trainer

PRESETS = ("digits-dcgan", "digits-vae", "digits-cgan")
STEPS = 1000  # detector training steps


def detector() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 16, 1))


def train_detector(real: torch.Tensor, fake: torch.Tensor, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = detector()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        r = real[torch.randint(len(real), (32,), generator=gen)]
        f = fake[torch.randint(len(fake), (32,), generator=gen)]
        logits = net(torch.cat([r, f])).flatten()
        target = torch.cat([torch.zeros(32), torch.ones(32)])  # 1 = generated
        loss = F.binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def auc(net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    scores = torch.cat([net(real).flatten(), net(fake).flatten()])
    truth = torch.cat([torch.zeros(len(real)), torch.ones(len(fake))])
    return float(roc_auc_score(truth.numpy(), scores.numpy()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, help="trained runs; the first is the detector's source")
    parser.add_argument("--quick", action="store_true", help="300 training steps per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_dataset(DataConfig(name="digits", resolution=16))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))
    half = len(data) // 2
    real_train, real_test = data.take(order[:half])[0], data.take(order[half:])[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs
        if not runs:
            runs = []
            for preset in PRESETS:
                run = Path(tmp) / preset
                overrides = [f"seed={args.seed}", "train.sample_every=0"] + (["train.steps=300"] if args.quick else [])
                Trainer(gankit.load_config(preset, overrides), run, progress=False).fit()
                runs.append(run)
        gens = {run.name: gankit.load(run) for run in runs}
        names = list(gens)
        fake_train = gens[names[0]].sample(half, seed=args.seed + 1)
        net = train_detector(real_train, fake_train, args.seed)
        results = {name: auc(net, real_test, g.sample(len(real_test), seed=args.seed + 2)) for name, g in gens.items()}
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, seed {args.seed}"
          f"{', quick' if args.quick else ''}; detector trained on {names[0]} samples against {half} real digits")
    print(f"{'model':16} {'AUC':>6}")
    for name, value in results.items():
        print(f"{name:16} {value:>6.3f}{'  (source)' if name == names[0] else ''}")
    print(json.dumps({"seed": args.seed, "quick": args.quick, "source": names[0], "auc": results}))


if __name__ == "__main__":
    main()
