"""`gankit eval` and `gankit info`: measure a run with its protocol stored beside every number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..errors import UserError
from ..metrics.modes2d import modes2d
from ..nets import count_parameters
from ..train import list_checkpoints, load


def evaluate_run(run_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Metrics for a run: the PacGAN mode protocol for toy 2D data, sample statistics otherwise."""
    gen = load(run_dir)
    spec = gen.spec
    if spec.get("centers") is not None:
        n = 2500
        samples = gen.sample(n, seed=seed)
        report = modes2d(samples, torch.tensor(spec["centers"]), spec["std"])
        return {"modes": report.modes, "hq_fraction": report.hq_fraction, "reverse_kl": report.reverse_kl,
                "total_modes": report.total_modes,
                "protocol": {"metric": "modes2d (PacGAN)", "samples": n, "threshold_std": 3.0, "seed": seed,
                             "weights": gen.info.get("weights"), "step": gen.info.get("step")}}
    return _sample_statistics(gen, seed)


def _sample_statistics(gen, seed: int) -> dict[str, Any]:
    """Pixel statistics of generated vs real data (mean, std, nearest-pixel-mean gap)."""
    real = load_dataset(gen.config.data, gen.config.seed)
    n = min(1000, len(real))
    fake = gen.sample(n, seed=seed).flatten(1).double()
    ref = real.take(torch.arange(n))[0].flatten(1).double()
    return {"fake_mean": float(fake.mean()), "real_mean": float(ref.mean()), "fake_std": float(fake.std()),
            "real_std": float(ref.std()), "mean_image_l2": float((fake.mean(0) - ref.mean(0)).norm()),
            "protocol": {"metric": "pixel statistics", "samples": n, "seed": seed, "weights": gen.info.get("weights"),
                         "step": gen.info.get("step")}}


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Config, steps and parameter counts of a run, from its files alone."""
    run_dir = Path(run_dir)
    gen = load(run_dir)
    checkpoints = [p.name for p in list_checkpoints(run_dir)]
    g_params = sum(count_parameters(getattr(gen.variant, n)) for n in gen.variant.generator_names)
    metrics_path = run_dir / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    except ValueError:
        raise UserError(f"{metrics_path} is not valid JSON", "re-run `gankit eval`") from None
    return {"run": str(run_dir), "step": gen.info.get("step"), "target_steps": gen.config.train.steps,
            "checkpoints": checkpoints, "data": gen.spec.get("name"), "kind": gen.kind,
            "shape": gen.spec.get("shape"), "variant": gen.config.variant, "model": gen.config.model.name,
            "loss": gen.config.loss.name, "parameters": gen.info.get("parameters", {"G": g_params}),
            "weights": gen.info.get("weights"), "metrics": metrics, "config": gen.config.model_dump(mode="json")}
