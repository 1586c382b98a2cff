"""Training throughput: gankit's trainer vs a plain PyTorch DCGAN loop written the pytorch/examples way.

Both train the same DCGAN (same nets, batch, optimizer, data in memory) in the same process, in alternating
rounds, so each gankit round has a plain round measured right beside it. Machine speed drifts by several per cent
between rounds on a shared machine, so the headline ratios are medians of these paired ratios.

- `ratio`: gankit with default settings / plain, at 16x16 (digits-dcgan); target >= 0.95.
- `fast_ratio`: gankit with the speed options (channels-last + bf16 autocast) / plain, at 16x16 and 64x64
  (`fast_ratio_64`); `channels_last_ratio`: channels-last alone at 16x16 (which of the two wins there depends on the
  CPU: bf16 needs AMX or AVX512-BF16 to pay).
- `peak_fraction`: achieved GFLOP/s of a step (the step's FLOPs counted by torch's FlopCounterMode) / the fp32 matmul
  GFLOP/s (a 2048x2048 product) measured in the same round, at 64x64.

    python benchmarks/throughput.py            # 16x16: 11 rounds of 100 steps; 64x64: 5 rounds of 8 steps
    python benchmarks/throughput.py --quick    # 3 rounds of 40 steps; 3 rounds of 4 steps
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
from torch.utils.flop_counter import FlopCounterMode

import gankit
from gankit.data import digits
from gankit.nets import DCGANDiscriminator, DCGANGenerator
from gankit.train import Trainer

FAST = ["train.channels_last=true", "train.precision=bf16"]  # the speed options measured here


def plain_loop(cfg: gankit.Config, data: torch.Tensor, steps: int, seed: int, flops: bool = False) -> float:
    """The reference loop (pytorch/examples dcgan/main.py): D on real, D on G(z).detach(), then G on the same fakes.

    Returns steps/s, or with `flops` the floating-point operations of one step (no timing)."""
    torch.manual_seed(seed)
    res, z_dim, width, batch = data.shape[-1], cfg.model.z_dim, cfg.model.width, cfg.train.batch_size
    net_g, net_d = DCGANGenerator(z_dim, data.shape[1], res, width), DCGANDiscriminator(data.shape[1], res, width)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=cfg.optim.lr_d, betas=betas)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.optim.lr_g, betas=betas)
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    perm = torch.randperm(len(data))

    def step(i: int) -> None:
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

    if flops:
        with FlopCounterMode(display=False) as counter:
            step(0)
        return float(counter.get_total_flops())
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps / (time.perf_counter() - start)


def matmul_gflops(size: int = 2048, repeats: int = 3) -> float:
    """fp32 matrix-product GFLOP/s of this machine right now (best of `repeats`): the peak a step is compared with."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def gankit_loop(cfg: gankit.Config, steps: int, progress: bool) -> float:
    """gankit's Trainer.fit for `steps` steps; the rate covers the training loop (logging included), not set-up."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})}), tmp,
                          progress=progress)
        return trainer.fit()["steps_per_s"]


def measure(res: int, rounds: int, steps: int, extra: bool) -> dict[str, dict[str, float]]:
    """Alternating rounds of every loop at one resolution; per loop its median rate, paired ratio to the plain loop
    and paired peak fraction. `extra`: also gankit with its progress bar, and with channels-last alone."""
    overrides = ["train.sample_every=0", "train.checkpoint_every=0", "optim.ema=null", f"data.resolution={res}"]
    cfg = gankit.load_config("digits-dcgan", overrides)
    fast = gankit.load_config("digits-dcgan", [*overrides, *FAST])
    data = digits(res).x
    step_flops = plain_loop(cfg, data, 1, 0, flops=True)
    plain_loop(cfg, data, 2, 0), gankit_loop(cfg, 2, False), gankit_loop(fast, 2, False)  # warm-up: first calls
    loops = {"plain": lambda r: plain_loop(cfg, data, steps, r), "gankit": lambda r: gankit_loop(cfg, steps, False),
             "gankit fast": lambda r: gankit_loop(fast, steps, False)}
    if extra:
        loops["gankit+bar"] = lambda r: gankit_loop(cfg, steps, True)
        nhwc = gankit.load_config("digits-dcgan", [*overrides, FAST[0]])
        gankit_loop(nhwc, 2, False)
        loops["gankit NHWC"] = lambda r: gankit_loop(nhwc, steps, False)
    rates: dict[str, list[float]] = {k: [] for k in loops}
    peaks = []
    for r in range(rounds):
        peaks.append(matmul_gflops())
        for name, loop in loops.items():
            rates[name].append(loop(r))
    out = {}
    for name, v in rates.items():
        out[name] = {"steps_per_s": statistics.median(v),
                     "ratio": statistics.median(a / b for a, b in zip(v, rates["plain"])),
                     "gflops": statistics.median(v) * step_flops / 1e9,
                     "peak_fraction": statistics.median(x * step_flops / 1e9 / p for x, p in zip(v, peaks))}
    out["machine"] = {"matmul_gflops": statistics.median(peaks), "step_gflop": step_flops / 1e9}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 40 steps (16x16) and of 4 steps (64x64)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds at 16x16 (64x64 runs half as many, >= 3)")
    parser.add_argument("--steps", type=int, default=None, help="steps per round at 16x16 (64x64: a twelfth)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 11)
    steps = args.steps or (40 if args.quick else 100)
    small = measure(16, rounds, steps, extra=True)
    large = measure(64, max(3, rounds // 2), max(4, steps // 12), extra=False)
    print(f"DCGAN (digits-dcgan nets: batch 64, width 64), torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {platform.processor() or platform.machine()}; fast = {' '.join(FAST)}")
    print(f"{'size':<7}{'loop':<13}{'median steps/s':>16}{'paired ratio':>14}{'GFLOP/s':>10}{'peak fraction':>15}")
    for res, table in ((16, small), (64, large)):
        for name, row in table.items():
            if name != "machine":
                print(f"{res}x{res:<4}{name:<13}{row['steps_per_s']:>16.2f}{row['ratio']:>14.3f}{row['gflops']:>10.1f}"
                      f"{row['peak_fraction']:>15.3f}")
        print(f"{res}x{res:<4}{'(machine)':<13} matmul {table['machine']['matmul_gflops']:.0f} GFLOP/s fp32, "
              f"step {table['machine']['step_gflop']:.2f} GFLOP")
    print(json.dumps({"ratio": round(small["gankit"]["ratio"], 4),
                      "ratio_with_progress_bar": round(small["gankit+bar"]["ratio"], 4),
                      "fast_ratio": round(small["gankit fast"]["ratio"], 4),
                      "fast_ratio_64": round(large["gankit fast"]["ratio"], 4),
                      "channels_last_ratio": round(small["gankit NHWC"]["ratio"], 4),
                      "peak_fraction": round(large["gankit fast"]["peak_fraction"], 4),
                      "peak_fraction_default": round(large["gankit"]["peak_fraction"], 4),
                      "peak_fraction_plain": round(large["plain"]["peak_fraction"], 4),
                      "gankit_steps_per_s": round(small["gankit"]["steps_per_s"], 3),
                      "plain_steps_per_s": round(small["plain"]["steps_per_s"], 3),
                      "matmul_gflops": round(large["machine"]["matmul_gflops"], 1),
                      "rounds": rounds, "steps_per_round": steps}))


if __name__ == "__main__":
    main()
