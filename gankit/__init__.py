"""gankit: train, diagnose, measure and apply GANs with one trainer and one CLI.

    import gankit
    cfg = gankit.load_config("ring8-gan", ["train.steps=2000"])
    gankit.train(cfg, "runs/ring")
    g = gankit.load("runs/ring")
    x = g.sample(1000, seed=0)
    gankit.evaluate("runs/ring")            # metrics with their protocol
    gankit.diagnose("runs/ring").problems   # what the doctor sees in the logs
    gankit.fid("real_images/", "runs/digits", features="digits")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config, preset_names, resolve
from .doctor import Diagnosis, diagnose
from .errors import UserError
from .report.evaluate import compare_sets, evaluate_run
from .train import Generator, Trainer, load
from .version import __version__


def load_config(preset_or_file: str, overrides: list[str] | None = None) -> Config:
    """A validated Config from a preset name or YAML file plus `key=value` overrides."""
    return resolve(preset_or_file, overrides)[0]


def train(cfg: Config | str, run_dir: str | Path, *, progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Train a config (or preset name) into run_dir; returns a summary with the final step."""
    cfg = load_config(cfg) if isinstance(cfg, str) else cfg
    return Trainer(cfg, run_dir, progress=progress, resume=resume).fit()


def evaluate(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Metrics of a run with their protocol (what `gankit eval` prints); see gankit.report.evaluate_run."""
    return evaluate_run(run_dir, **kwargs)


def fid(a: str | Path, b: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Fréchet distance (and optionally KID, PRDC) between two sets, as `gankit fid`; see report.compare_sets."""
    return compare_sets(a, b, **kwargs)


__all__ = ["Config", "Diagnosis", "Generator", "Trainer", "UserError", "diagnose", "evaluate", "fid", "load",
           "load_config", "preset_names", "train", "__version__"]
