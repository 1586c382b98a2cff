"""Shared fixtures: small, fast configs and a CLI runner that captures output and the exit code."""

from __future__ import annotations

import os

# One thread per process: the suite's nets are tiny, and subprocess tests (signals, kill -9) run beside pytest on
# the same 2 cores, where oversubscribed OpenMP threads spin and slow everything by an order of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(1)

from gankit.cli import main  # noqa: E402
from gankit.train import Generator, load  # noqa: E402
from gankit.variants import build_variant, resolve  # noqa: E402


@pytest.fixture
def ring_cfg():
    """A ring8-gan config small enough to train in about a second."""
    def make(*overrides: str):
        return resolve("ring8-gan", ["train.steps=60", "train.log_every=10", "train.sample_every=0",
                                     "train.checkpoint_every=0", *overrides])[0]
    return make


@pytest.fixture
def cli(capsys):
    """Run `gankit ARGS...` in-process; returns (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


@pytest.fixture(scope="session")
def train_tiny(tmp_path_factory):
    """Train `preset` with `overrides` (a few steps) once per session; returns the run directory."""
    from gankit.train import Trainer

    runs = {}

    def make(preset: str, *overrides: str):
        if (preset, overrides) not in runs:
            run = tmp_path_factory.mktemp(preset) / "run"
            Trainer(resolve(preset, list(overrides))[0], run, progress=False).fit()
            runs[preset, overrides] = run
        return runs[preset, overrides]
    return make


@pytest.fixture
def pair_setup():
    """A freshly seeded variant of a two-domain preset and the first batch of its pair sampler."""
    from gankit.data import PairSampler, load_dataset
    from gankit.variants import build_variant

    def make(preset: str, *overrides: str, batch_size: int = 4):
        torch.manual_seed(0)
        cfg = resolve(preset, list(overrides))[0]
        data = load_dataset(cfg.data, cfg.seed)
        return build_variant(cfg, data.spec()), PairSampler(data, batch_size, 0).next()
    return make


def varied(run) -> Generator:
    """A tiny DCGAN run's generator with weights redrawn so its images depend strongly on z (after two steps from
    DCGAN's small init it draws nearly the same image for every z, which leaves inversion nothing to find)."""
    gen = load(run)
    torch.manual_seed(0)
    with torch.no_grad():
        for m in gen.variant.G.modules():
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.normal_(0, 0.4 / m.weight.shape[0] ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
    return gen


class KnownLatents(torch.nn.Module):
    """An encoder that knows the answer: the latents the test images were drawn from."""

    def __init__(self, z: torch.Tensor) -> None:
        super().__init__()
        self.z = z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.z[: len(x)]


def train_until_interrupted(cfg, run, step: int):
    """Train `cfg` into `run` and stop after `step` steps as Ctrl-C would (the loop increments the step, then sees
    the handler's flag); returns the step the run stopped at."""
    import signal

    from gankit.train import make_trainer

    trainer = make_trainer(cfg, run, progress=False)  # the federated trainer for federated configs
    iteration = trainer._iteration

    def stop_then(window):
        iteration(window)
        if trainer.step == step - 1:
            trainer.stop_signal = signal.SIGINT

    trainer._iteration = stop_then
    return trainer.fit()["step"]


def variant_and_batch(preset: str, *overrides: str, n: int = 16):
    """A freshly seeded variant of a preset (with overrides) and a fixed batch of its first n samples."""
    from gankit.data import Batch, load_dataset

    torch.manual_seed(0)
    cfg = resolve(preset, list(overrides))[0]
    data = load_dataset(cfg.data, cfg.seed)
    return build_variant(cfg, data.spec()), Batch(*data.take(torch.arange(n)))

