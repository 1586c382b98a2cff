"""NaN/Inf guard: skip non-finite updates, roll back to the last good state with lower learning rates, give up cleanly.

A skipped update never touches the weights. After `patience` non-finite steps in a row the guard restores the
last in-memory snapshot (weights, optimizer moments, EMA) and scales every learning rate by `factor`; after
`max_rollbacks` such rollbacks the run stops with `Diverged`, leaving the restored good state to be checkpointed.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from . import checkpoint as ckpt
from .ema import EMA


class Diverged(UserError):
    """Training kept producing NaN/Inf after every rollback: stop with a clear message (exit code 3)."""

    exit_code = 3


class NanGuard:
    """Counts non-finite steps, keeps a good snapshot, rolls back and lowers learning rates."""

    def __init__(self, variant: nn.Module, optimizers: dict[str, torch.optim.Optimizer], ema: EMA | None,
                 base_lrs: dict[str, float], patience: int, max_rollbacks: int, factor: float) -> None:
        self.variant, self.optimizers, self.ema, self.base_lrs = variant, optimizers, ema, base_lrs
        self.patience, self.max_rollbacks, self.factor = patience, max_rollbacks, factor
        self.streak: dict[str, int] = {}  # non-finite steps in a row, per optimizer group
        self.skipped = self.rollbacks = 0
        self.lr_scale = 1.0  # lowered by rollbacks
        self.schedule = 1.0  # set by the trainer's learning-rate schedule
        self.events: list[dict[str, Any]] = []
        self.snapshot_step = 0
        self._snapshot: dict[str, Any] | None = None

    def snapshot(self, step: int) -> None:
        """Remember the current (finite) state as the one to return to."""
        self._snapshot = {
            "variant": {k: v.detach().clone() for k, v in self.variant.state_dict().items()},
            "optim": {g: copy.deepcopy(o.state_dict()) for g, o in self.optimizers.items()},
            "ema": {k: v.clone() for k, v in self.ema.shadow.items()} if self.ema else None,
        }
        self.snapshot_step = step

    @property
    def has_snapshot(self) -> bool:
        return self._snapshot is not None

    @property
    def clean(self) -> bool:
        """No group is in a run of non-finite steps (so the current state is worth a snapshot)."""
        return not any(self.streak.values())

    def finite(self, group: str) -> None:
        self.streak[group] = 0

    def nonfinite(self, group: str, step: int) -> bool:
        """Record a skipped update; `patience` in a row for one group trigger a rollback (returns True then)."""
        self.streak[group] = self.streak.get(group, 0) + 1
        self.skipped += 1
        if self.streak[group] < self.patience:
            return False
        self.rollback(group, step)
        return True

    def rollback(self, group: str, step: int) -> None:
        """Restore the snapshot and lower learning rates, or raise Diverged when out of rollbacks."""
        snap = self._snapshot
        self.variant.load_state_dict(snap["variant"])
        for g, opt in self.optimizers.items():
            opt.load_state_dict(copy.deepcopy(snap["optim"][g]))  # moved to the parameters' device by torch
            ckpt.match_layouts(opt)  # a snapshot read from a checkpoint holds contiguous moments
        if self.ema is not None:
            self.ema.shadow = {k: v.clone() for k, v in snap["ema"].items()}
        self.streak = {}
        self.apply_lrs()  # the snapshot's optimizer state carries the learning rates of its time
        if self.rollbacks >= self.max_rollbacks:
            raise Diverged(
                f"training diverged: NaN/Inf in the {group} step at step {step} after {self.rollbacks} rollbacks "
                f"(learning rates already scaled by {self.lr_scale:g})",
                "lower optim.lr_d / optim.lr_g, or add a stabiliser; the last good state was saved and loads")
        self.rollbacks += 1
        self.lr_scale *= self.factor
        self.apply_lrs()
        self.events.append({"step": step, "event": "rollback", "group": group, "restored_step": self.snapshot_step,
                            "lr_scale": self.lr_scale, "rollbacks": self.rollbacks})

    def apply_lrs(self) -> None:
        """Set every group's learning rate to its configured value times the rollback scale and the schedule."""
        for g, opt in self.optimizers.items():
            for pg in opt.param_groups:
                pg["lr"] = self.base_lrs[g] * self.lr_scale * self.schedule

    def to_files(self, current: bool) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        """What a checkpoint needs so that a resumed run rolls back exactly as an uninterrupted one would: the streaks
        and the snapshot's step (state.json), and the snapshot's tensors unless it is `current`, the checkpoint's own
        state (snapshots are taken at every checkpoint of the cadence, so only a stop between them saves a copy)."""
        state: dict[str, Any] = {"snapshot_step": self.snapshot_step, "streak": dict(self.streak)}
        if current or self._snapshot is None:
            return None, state
        snap = self._snapshot
        optim, state["optim"] = ckpt.state_dicts_to_files(snap["optim"])
        tensors = {**{f"variant.{k}": v for k, v in snap["variant"].items()},
                   **{f"optim.{k}": v for k, v in optim.items()},
                   **{f"ema.{k}": v for k, v in (snap["ema"] or {}).items()}}
        return tensors, state

    def from_files(self, step: int, tensors: dict[str, torch.Tensor] | None, state: dict[str, Any] | None) -> None:
        """Restore what `to_files` saved at `step` (a checkpoint without it: the snapshot is the state at `step`)."""
        self.streak = dict((state or {}).get("streak", {}))
        if tensors is None:
            self.snapshot(step)
            return
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        ema = None
        if self.ema is not None:  # on the device of the live EMA; one switched on at this resume starts from its own
            shadow = self.ema.shadow
            ema = {k: v.to(shadow[k].device) for k, v in part("ema.").items()} or \
                {k: v.clone() for k, v in shadow.items()}
        self._snapshot = {"variant": part("variant."),
                          "optim": ckpt.state_dicts_from_files(part("optim."), state["optim"]), "ema": ema}
        self.snapshot_step = state["snapshot_step"]

    def take_window(self) -> tuple[int, list[dict[str, Any]]]:
        """Skipped updates and events since the last call (for logs.jsonl)."""
        skipped, events = self.skipped, self.events
        self.skipped, self.events = 0, []
        return skipped, events
