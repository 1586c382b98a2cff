"""Training throughput: gankit's trainer vs a plain PyTorch DCGAN loop written the pytorch/examples way.

Both train the same DCGAN (same nets, batch, optimizer, data in memory) in the same process, in alternating
rounds, so each gankit round has a plain round measured right beside it. Machine speed drifts by several per cent
between rounds on a shared machine, so the headline `ratio` is the median of these paired ratios; the ratio of the
best rounds is printed too.

    python benchmarks/throughput.py            # 11 rounds of 100 steps each
    python benchmarks/throughput.py --quick    # 3 rounds of 40 steps
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import gankit
from gankit.data import digits
from gankit.nets import DCGANDiscriminator, DCGANGenerator
from gankit.train import Trainer


def plain_loop(cfg: gankit.Config, data: torch.Tensor, steps: int, seed: int) -> float:
    """The reference loop (pytorch/examples dcgan/main.py): D on real, D on G(z).detach(), then G on the same fakes."""
    torch.manual_seed(seed)
    res, z_dim, width, batch = data.shape[-1], cfg.model.z_dim, cfg.model.width, cfg.train.batch_size
    net_g, net_d = DCGANGenerator(z_dim, data.shape[1], res, width), DCGANDiscriminator(data.shape[1], res, width)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.optim.lr_d, betas=betas)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.optim.lr_g, betas=betas)
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    perm = torch.randperm(len(data))
    start = time.perf_counter()
    for i in range(steps):
        idx = perm[(i * batch) % (len(data) - batch):][:batch]
        real = data[idx]
        net_d.zero_grad()
        err_real = F.binary_cross_entropy_with_logits(net_d(real), ones)
        err_real.backward()
        fake = net_g(torch.randn(batch, z_dim))
        err_fake = F.binary_cross_entropy_with_logits(net_d(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        net_g.zero_grad()
        err_g = F.binary_cross_entropy_with_logits(net_d(fake), ones)
        err_g.backward()
        opt_g.step()
        _ = (err_real + err_fake).item(), err_g.item()  # the reference prints these every step
    return steps / (time.perf_counter() - start)


def gankit_loop(cfg: gankit.Config, steps: int, progress: bool) -> float:
    """gankit's Trainer.fit for `steps` steps; the rate covers the training loop (logging included), not set-up."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})}), tmp,
                          progress=progress)
        return trainer.fit()["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 40 steps")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 11)
    steps = args.steps or (40 if args.quick else 100)
    cfg = gankit.load_config("digits-dcgan", ["train.sample_every=0", "train.checkpoint_every=0", "optim.ema=null"])
    data = digits(16).x
    plain_loop(cfg, data, 10, 0), gankit_loop(cfg, 10, False)  # warm-up: allocator, thread pool, first-call costs

    rates: dict[str, list[float]] = {"plain": [], "gankit": [], "gankit+bar": []}
    for r in range(rounds):
        rates["plain"].append(plain_loop(cfg, data, steps, r))
        rates["gankit"].append(gankit_loop(cfg, steps, progress=False))
        rates["gankit+bar"].append(gankit_loop(cfg, steps, progress=True))
    best = {k: max(v) for k, v in rates.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    paired = {k: statistics.median(a / b for a, b in zip(v, rates["plain"])) for k, v in rates.items()}
    print(f"DCGAN 16x16, batch {cfg.train.batch_size}, width {cfg.model.width}; {rounds} rounds x {steps} steps; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'loop':<12}{'median steps/s':>16}{'best':>10}{'worst':>10}{'paired ratio':>14}{'best ratio':>12}")
    for k, v in rates.items():
        print(f"{k:<12}{med[k]:>16.2f}{best[k]:>10.2f}{min(v):>10.2f}{paired[k]:>14.3f}{best[k] / best['plain']:>12.3f}")
    print(json.dumps({"gankit_steps_per_s": round(med["gankit"], 3), "plain_steps_per_s": round(med["plain"], 3),
                      "ratio": round(paired["gankit"], 4), "ratio_best": round(best["gankit"] / best["plain"], 4),
                      "ratio_with_progress_bar": round(paired["gankit+bar"], 4),
                      "rounds": rounds, "steps_per_round": steps}))


if __name__ == "__main__":
    main()
