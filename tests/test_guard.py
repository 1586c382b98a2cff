"""The NaN/Inf guard: skipped updates, rollbacks with lower learning rates, and a clean stop that stays loadable."""

import json
import math

import pytest
import torch

import gankit
from gankit.train import Trainer, read_logs
from gankit.train.guard import Diverged


def test_huge_learning_rates_stop_cleanly_and_stay_loadable(tmp_path, ring_cfg):
    run = tmp_path / "r"
    trainer = Trainer(ring_cfg("optim.lr_d=1e12", "optim.lr_g=1e12", "train.max_rollbacks=2"), run, progress=False)
    with pytest.raises(Diverged, match="training diverged") as info:
        trainer.fit()
    assert info.value.exit_code == 3
    events = [r for r in read_logs(run / "logs.jsonl") if "event" in r]
    rollbacks = [e for e in events if e["event"] == "rollback"]
    assert [e["lr_scale"] for e in rollbacks] == [0.5, 0.25] and events[-1]["event"] == "diverged"
    # the restored good state was saved: it loads and samples finite numbers
    samples = gankit.load(run).sample(100, seed=0)
    assert torch.isfinite(samples).all()
    assert all(torch.isfinite(p).all() for p in trainer.variant.parameters())


def test_isolated_nonfinite_steps_are_skipped_without_rollback(tmp_path, ring_cfg, monkeypatch):
    trainer = Trainer(ring_cfg("train.steps=30"), tmp_path / "r", progress=False)
    real_loss = trainer.variant.loss
    calls = {"n": 0}

    def sometimes_nan(phase, batch, ctx):
        loss, scalars = real_loss(phase, batch, ctx)
        calls["n"] += 1
        return (loss * math.nan if calls["n"] % 7 == 0 else loss), scalars

    monkeypatch.setattr(trainer.variant, "loss", sometimes_nan)
    trainer.fit()
    records = read_logs(tmp_path / "r" / "logs.jsonl")
    assert sum(r.get("skipped_nonfinite", 0) for r in records) == 60 // 7
    assert not any(r.get("event") in ("rollback", "diverged") for r in records)
    assert all(math.isfinite(r["d_loss"]) for r in records if "d_loss" in r)


def test_lr_scale_survives_resume(tmp_path, ring_cfg):
    run = tmp_path / "r"
    trainer = Trainer(ring_cfg("train.steps=20"), run, progress=False)
    trainer.guard.lr_scale = 0.25
    trainer.guard.apply_lrs()
    trainer.fit()
    resumed = Trainer(ring_cfg("train.steps=30"), run, resume=True, progress=False)
    assert resumed.optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.25 * resumed.cfg.optim.lr_d)
    assert json.loads((run / "checkpoints" / "step-20" / "state.json").read_text())["lr_scale"] == 0.25
