"""gankit: train, diagnose, measure and apply GANs with one trainer and one CLI.

    import gankit
    cfg = gankit.load_config("ring8-gan", ["train.steps=2000"])
    gankit.train(cfg, "runs/ring")
    g = gankit.load("runs/ring")
    x = g.sample(1000, seed=0)
    gankit.evaluate("runs/ring")            # metrics with their protocol
    gankit.diagnose("runs/ring").problems   # what the doctor sees in the logs
    gankit.fid("real_images/", "runs/digits", features="digits")

Heavy modules (torch and everything built on it) load on first use, so `gankit --help` answers at once.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, preset_names
from .errors import UserError
from .version import __version__

if TYPE_CHECKING:
    from .doctor import Diagnosis, diagnose
    from .train import Generator, Trainer, load

_LAZY = {"Trainer": "train", "Generator": "train", "load": "train", "Diagnosis": "doctor", "diagnose": "doctor",
         "metrics": "metrics"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return module if name == _LAZY[name] else getattr(module, name)
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")


def load_config(preset_or_file: str, overrides: list[str] | None = None) -> Config:
    """A validated Config from a preset name or YAML file plus `key=value` overrides."""
    from .variants import resolve

    return resolve(preset_or_file, overrides)[0]


def train(cfg: Config | str, run_dir: str | Path, *, progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Train a config (or preset name) into run_dir; returns a summary with the final step."""
    from .train import make_trainer

    cfg = load_config(cfg) if isinstance(cfg, str) else cfg
    return make_trainer(cfg, run_dir, progress=progress, resume=resume).fit()


def evaluate(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Metrics of a run with their protocol (what `gankit eval` prints); see gankit.report.evaluate_run."""
    from .report.evaluate import evaluate_run

    return evaluate_run(run_dir, **kwargs)


def fid(a: str | Path, b: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Fréchet distance (and optionally KID, PRDC) between two sets, as `gankit fid`; see report.compare_sets."""
    from .report.compare import compare_sets

    return compare_sets(a, b, **kwargs)


class _Package(types.ModuleType):
    """Keeps `gankit.train` the function: importing the `gankit.train` subpackage would otherwise rebind the name
    (the subpackage itself stays importable as usual, e.g. `from gankit.train import Trainer`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["Config", "Diagnosis", "Generator", "Trainer", "UserError", "diagnose", "evaluate", "fid", "load",
           "load_config", "preset_names", "train", "__version__"]
