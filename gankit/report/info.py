"""`gankit info`: what a run is, from its files alone: a short summary, or everything as JSON."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..nets import count_parameters, family
from ..train import list_checkpoints, load
from ..variants import resolve

SUMMARY_METRICS = ("fid", "kid", "is", "precision", "recall", "modes", "hq_fraction", "reverse_kl", "class_accuracy",
                   "code_accuracy", "code_accuracy_real")  # shown by the summary when metrics.json has them


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """Config (only the keys that apply to this run), steps, time, parameter counts and last metrics of a run, or of
    an exported model folder (with less to say)."""
    run_dir = Path(run_dir)
    gen = load(run_dir, ensemble=True)  # a summary may describe an ensemble run whole
    cfg_path = run_dir / "config.yaml"
    cfg = resolve(str(cfg_path))[0] if cfg_path.is_file() else gen.config
    checkpoints = [p.name for p in list_checkpoints(run_dir)]
    g_params = sum(count_parameters(m) for m in gen.variant.generator_modules())
    nets = gen.variant.own_nets or f"{family(cfg.model, gen.spec)} nets" + \
        (f", an ensemble of {cfg.model.members} (gankit split)" if cfg.model.members > 1 else "")
    config = cfg.applicable(family(cfg.model, gen.spec))
    if gen.variant.own_nets:
        config.pop("model")  # the variant's own section sizes its nets
    return {"run": str(run_dir), "step": gen.info.get("step"), "target_steps": cfg.train.steps,
            "checkpoints": checkpoints, "data": gen.spec.get("name"), "kind": gen.kind,
            "shape": gen.spec.get("shape"), "sample": gen.data_kind.sample_shape(gen.spec), "variant": cfg.variant,
            "model": None if gen.variant.own_nets else family(cfg.model, gen.spec), "nets": nets,
            "loss": cfg.loss.name, "parameters": gen.info.get("parameters", {"G": g_params}),
            "weights": gen.info.get("weights"), "training_seconds": _training_seconds(run_dir),
            "metrics": _read_json(run_dir / "metrics.json", "re-run `gankit eval`"),
            "watermark": gen.provenance(run_dir).get("watermark"), "config": config}


def summary_lines(info: dict[str, Any]) -> list[str]:
    """The few lines `gankit info` prints: what was trained on what, how far, how long, how big, how good."""
    lines = [f"{info['run']}: {info['variant']} ({info['nets']}, {info['loss']} loss) on {info['data']} "
             f"({info['kind']} {info['sample']})",
             f"steps       {info['step']} of {info['target_steps']}"
             + (f" (checkpoints: {', '.join(info['checkpoints'])})" if info["checkpoints"] else "")]
    if info["training_seconds"] is not None:
        lines.append(f"trained     {_duration(info['training_seconds'])} (run.json)")
    lines.append("parameters  " + ", ".join(f"{g} {n:,}" for g, n in info["parameters"].items()))
    lines.append(f"weights     {info['weights']}" + (" (sampling uses the EMA generator)"
                                                      if info["weights"] == "ema" else ""))
    metrics = info["metrics"] or {}
    shown = [f"{k} {metrics[k]:.4g}" if isinstance(metrics[k], float) else
             f"{k} {'undefined' if metrics[k] is None else metrics[k]}"  # null: infinite or NaN (metrics.md)
             for k in SUMMARY_METRICS if k in metrics]
    lines.append("metrics     " + (", ".join(shown) + " (metrics.json)" if shown else "none yet: run `gankit eval`"))
    return lines


def _read_json(path: Path, hint: str) -> dict[str, Any] | None:
    """A JSON object file of the run (None when it is missing); anything else is the user's to fix, with `hint`."""
    try:
        value = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        raise UserError(f"{path} is not valid JSON", hint) from None
    if value is not None and not isinstance(value, dict):
        raise UserError(f"{path} holds a JSON {type(value).__name__}, not an object", hint)
    return value


def _training_seconds(run_dir: Path) -> float | None:
    """Wall time of all finished training sessions in run.json (None when the run has no record)."""
    path, hint = run_dir / "run.json", "delete it; the next training session starts a new one"
    record = _read_json(path, hint) or {}
    try:
        spans = [datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"])
                 for s in record.get("sessions", []) if s.get("end")]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # edited by hand
        raise UserError(f"{path}: its sessions are not gankit's run record ({type(exc).__name__}: {exc})",
                        hint) from None
    return sum(span.total_seconds() for span in spans) if spans else None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def metric_rows(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A metrics result without its protocol as (name, value) rows, nested groups (tstr, privacy, per-column
    figures) as dotted names: tstr.random_forest.f1_synthetic."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if key == "protocol" and not prefix:
            continue
        if isinstance(value, dict):
            rows += metric_rows(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows
