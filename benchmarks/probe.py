"""Self-supervised features: a linear probe on the features of a D trained without labels, against the same D
untrained, a supervised CNN of the same architecture, and raw pixels (the DCGAN paper's claim, measured).

For each data set and seed: train the unconditional DCGAN preset (no labels), take D's last feature map for a
labelled training split and a held-out split, fit a logistic regression on the training split and report its
held-out accuracy. Baselines in the same run: D's architecture with its initial weights (random features), the same
architecture trained with labels (a linear head on D's body, cross-entropy, on the probe's training split), and
logistic regression on the pixels.

    python benchmarks/probe.py                    # digits-dcgan and shapes-dcgan, 3 seeds each, their full lengths
    python benchmarks/probe.py --sets digits      # digits only (about 15 minutes on 2 cores)
    python benchmarks/probe.py --quick            # 200 training steps, one seed: wiring
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import gankit
from gankit.data import load_dataset
from gankit.train import Trainer
from gankit.train.pretrained import checkpoint_variant
from gankit.variants import build_variant

PRESETS = {"digits": "digits-dcgan", "shapes": "shapes-dcgan"}
SPLIT = {"digits": (1000, 797), "shapes": (2000, 2000)}  # (probe training, held-out) images; digits has 1,797
SUPERVISED_STEPS = 1500


def labelled(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) for the probe: digits split at random; shapes drawn fresh from other seeds
    (label: the shape), so no probe image was a GAN training image."""
    train_n, test_n = SPLIT[name]
    if name == "digits":
        data = load_dataset(gankit.load_config(PRESETS[name]).data)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        x, y = data.take(order)
        return x[:train_n], y[:train_n], x[train_n:train_n + test_n], y[train_n:train_n + test_n]
    cfg = gankit.load_config(PRESETS[name], [f"data.n={train_n}"]).data
    train = load_dataset(cfg, seed + 1000)
    test = load_dataset(cfg.model_copy(update={"n": test_n}), seed + 2000)
    (xa, ya), (xb, yb) = train.take(torch.arange(train_n)), test.take(torch.arange(test_n))
    return xa, ya, xb, yb


@torch.no_grad()
def features(body: nn.Module, x: torch.Tensor) -> np.ndarray:
    body.eval()
    return torch.cat([body(part).flatten(1) for part in x.split(256)]).numpy()


def probe(train: np.ndarray, y_train: torch.Tensor, test: np.ndarray, y_test: torch.Tensor) -> float:
    """Held-out accuracy of a standardised, L2-regularised logistic regression."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    model.fit(train, y_train.numpy())
    return float(model.score(test, y_test.numpy()))


def supervised(body: nn.Module, dim: int, classes: int, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
               y_test: torch.Tensor, seed: int) -> float:
    """Held-out accuracy of D's architecture trained with labels (a linear head on its body)."""
    torch.manual_seed(seed)
    net = nn.Sequential(body, nn.Flatten(), nn.Linear(dim, classes))
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(SUPERVISED_STEPS):
        idx = torch.randint(len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        predicted = torch.cat([net(part).argmax(1) for part in x_test.split(256)])
    return float((predicted == y_test).float().mean())


def one(name: str, seed: int, steps: int | None, root: Path) -> dict:
    overrides = [f"seed={seed}", "train.sample_every=0"] + ([f"train.steps={steps}"] if steps else [])
    cfg = gankit.load_config(PRESETS[name], overrides)
    run_dir = root / f"{name}-{seed}"
    start = time.perf_counter()
    Trainer(cfg, run_dir, progress=False).fit()
    minutes = (time.perf_counter() - start) / 60
    variant, _, state = checkpoint_variant(cfg, {}, run_dir)
    trained = variant.D.body
    torch.manual_seed(seed)
    fresh = build_variant(cfg, state["spec"]).D.body  # the same architecture, initial weights
    x, y, x_test, y_test = labelled(name, seed)
    f_train, f_test = features(trained, x), features(trained, x_test)
    r_train, r_test = features(fresh, x), features(fresh, x_test)
    classes = int(max(y.max(), y_test.max())) + 1
    return {"set": name, "seed": seed, "gan_steps": cfg.train.steps, "gan_minutes": round(minutes, 2),
            "feature_dim": f_train.shape[1], "probe_train": len(x), "probe_test": len(x_test),
            "gan_d": probe(f_train, y, f_test, y_test), "random_d": probe(r_train, y, r_test, y_test),
            "pixels": probe(x.flatten(1).numpy(), y, x_test.flatten(1).numpy(), y_test),
            "supervised": supervised(fresh, f_train.shape[1], classes, x, y, x_test, y_test, seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="digits,shapes", help="comma-separated: digits, shapes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="GAN training steps (default: the preset's)")
    parser.add_argument("--quick", action="store_true", help="200 GAN steps, one seed")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.seeds = 200, 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            for seed in range(args.seeds):
                rows.append(one(name, seed, args.steps, Path(tmp)))
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
          f"{', quick' if args.quick else ''}")
    print(f"{'set':7} {'seed':>4} {'steps':>6} {'GAN D':>7} {'random D':>9} {'pixels':>7} {'supervised':>11}")
    for r in rows:
        print(f"{r['set']:7} {r['seed']:>4} {r['gan_steps']:>6} {r['gan_d']:>7.3f} {r['random_d']:>9.3f} "
              f"{r['pixels']:>7.3f} {r['supervised']:>11.3f}")
    summary = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        for key in ("gan_d", "random_d", "pixels", "supervised"):
            values = np.array([r[key] for r in mine])
            summary[f"{key}_{name}_mean"] = round(float(values.mean()), 4)
            summary[f"{key}_{name}_se"] = round(float(values.std(ddof=1) / np.sqrt(len(values))), 4) \
                if len(values) > 1 else None
        print(f"{name} mean: GAN D {summary[f'gan_d_{name}_mean']:.3f}, random D {summary[f'random_d_{name}_mean']:.3f}"
              f", pixels {summary[f'pixels_{name}_mean']:.3f}, supervised {summary[f'supervised_{name}_mean']:.3f}")
    print(json.dumps({"quick": args.quick, "summary": summary, "rows": rows}))


if __name__ == "__main__":
    main()
