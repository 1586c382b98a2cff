"""`gankit info`: what a run is, from its files alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..nets import count_parameters
from ..train import list_checkpoints, load
from ..variants import resolve


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Config, steps and parameter counts of a run (or of an exported model folder, with less to say)."""
    run_dir = Path(run_dir)
    gen = load(run_dir)
    cfg_path = run_dir / "config.yaml"
    cfg = resolve(str(cfg_path))[0] if cfg_path.is_file() else gen.config
    checkpoints = [p.name for p in list_checkpoints(run_dir)]
    g_params = sum(count_parameters(m) for m in gen.variant.generator_modules())
    metrics_path = run_dir / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    except ValueError:
        raise UserError(f"{metrics_path} is not valid JSON", "re-run `gankit eval`") from None
    return {"run": str(run_dir), "step": gen.info.get("step"), "target_steps": cfg.train.steps,
            "checkpoints": checkpoints, "data": gen.spec.get("name"), "kind": gen.kind,
            "shape": gen.spec.get("shape"), "variant": cfg.variant, "model": cfg.model.name,
            "loss": cfg.loss.name, "parameters": gen.info.get("parameters", {"G": g_params}),
            "weights": gen.info.get("weights"), "metrics": metrics, "config": cfg.model_dump(mode="json")}
