"""Restarts: train a few candidate starts briefly and continue the one a logged, label-free criterion likes best.

Some games settle early into one of several outcomes of unequal quality (InfoGAN's clusters, docs/infogan.md). With
`train.restarts` = R, candidate r trains with seed `seed + 1000·r` for `train.restart_steps` into
RUN/restarts/seed-S; each is scored by the mean of the logged scalar `train.restart_by` over its last quarter, and the
lowest becomes the run: its checkpoints, logs and pictures are copied into RUN and training continues from there.
RUN/restarts.json records the candidates, their scores and the choice; the candidates' directories stay beside it.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Callable

from ..config import Config
from ..errors import UserError
from ..io import write_json
from . import checkpoint as ckpt
from .logging import read_logs

log = logging.getLogger(__name__)

SEED_STRIDE = 1000  # candidate r trains with seed + 1000·r, so the candidates of seeds 0, 1, 2 never coincide
COPIED = ("logs.jsonl", "samples", "checkpoints")


def candidate_seeds(cfg: Config) -> list[int]:
    return [cfg.seed + SEED_STRIDE * r for r in range(cfg.train.restarts)]


def score(run_dir: Path, key: str, steps: int) -> float:
    """Mean of `key` over the log records of the last quarter of `steps` (lower is better)."""
    records = [r for r in read_logs(run_dir / "logs.jsonl") if r.get("step", 0) > 0.75 * steps]
    values = [r[key] for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    if not values:
        logged = sorted({k for r in records for k in r if isinstance(r[k], (int, float))} - {"step"})
        raise UserError(f"train.restart_by={key!r} is not logged by this run",
                        f"choose one of: {', '.join(logged) or '(nothing was logged)'}")
    return sum(values) / len(values)


def pending(run_dir: Path) -> bool:
    """Whether RUN still has to choose its start: no checkpoint of its own yet."""
    return not ckpt.list_checkpoints(run_dir)


def choose_start(cfg: Config, run_dir: Path, train_candidate: Callable[[Config, Path, bool], dict]) -> int | None:
    """Train (or finish) every candidate, copy the best into `run_dir`; returns the signal that stopped a candidate,
    or None once the run holds the winner's checkpoint. `train_candidate(cfg, dir, resume)` trains one and returns
    the trainer's result."""
    t = cfg.train
    results = []
    for seed in candidate_seeds(cfg):
        candidate = cfg.model_copy(update={"seed": seed, "train": t.model_copy(update={
            "steps": t.restart_steps, "restarts": 1, "checkpoint_every": 0})})
        target = run_dir / "restarts" / f"seed-{seed}"
        done = ckpt.list_checkpoints(target)
        if not done and target.exists():
            shutil.rmtree(target)  # stopped before its first checkpoint: start it again
        if not done or ckpt.latest_checkpoint(target)[1]["step"] < t.restart_steps:
            log.info("restart candidate seed %d: %d steps", seed, t.restart_steps)
            result = train_candidate(candidate, target, bool(done))
            if result["interrupted_by"] is not None:
                return result["interrupted_by"]
        results.append({"seed": seed, "score": score(target, t.restart_by, t.restart_steps)})
        log.info("restart candidate seed %d: %s %.4g", seed, t.restart_by, results[-1]["score"])
    best = min(results, key=lambda r: r["score"])
    source = run_dir / "restarts" / f"seed-{best['seed']}"
    for name in COPIED:
        if (source / name).is_dir():
            shutil.copytree(source / name, run_dir / name, dirs_exist_ok=True)
        elif (source / name).is_file():
            shutil.copy2(source / name, run_dir / name)
    write_json(run_dir / "restarts.json", {
        "by": t.restart_by, "rule": "lowest mean over the last quarter of each candidate's steps",
        "steps": t.restart_steps, "candidates": results, "chosen_seed": best["seed"]})
    log.info("continuing restart candidate seed %d (lowest %s)", best["seed"], t.restart_by)
    return None
