"""Shared fixtures: small, fast configs and a CLI runner that captures output and the exit code."""

from __future__ import annotations

import pytest

from gankit.cli import main
from gankit.config import resolve


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
