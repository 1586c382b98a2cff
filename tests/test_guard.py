"""The NaN/Inf guard: skipped updates, rollbacks with lower learning rates, and a clean stop that stays loadable."""

import json
import math

import pytest
import torch

import gankit
from gankit.train import Trainer, read_logs
from gankit.train.checkpoint import read_checkpoint
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


def _training_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Copies of everything a rollback must restore: weights, optimizer moments and steps, EMA."""
    state = {f"variant.{k}": v.clone() for k, v in trainer.variant.state_dict().items()}
    for group, optimizer in trainer.optimizers.items():
        for index, moments in optimizer.state_dict()["state"].items():
            state.update({f"optim.{group}.{index}.{k}": v.clone() for k, v in moments.items()})
    state.update({f"ema.{k}": v.clone() for k, v in trainer.ema.shadow.items()})
    return state


def _differing_parts(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    return {k.split(".")[0] for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k])}


def test_rollback_restores_the_exact_pre_nan_state_every_time(tmp_path, ring_cfg, monkeypatch):
    """Catches a rollback that leaves weights, Adam moments or the EMA as they were at the NaN, or that shares tensors
    with its snapshot (training on would then move the snapshot, and a second rollback restore a drifted state)."""
    trainer = Trainer(ring_cfg("train.batch_size=16", "model.g_hidden=[16]", "model.d_hidden=[16]",
                               "optim.ema=0.9", "train.nan_patience=1"), tmp_path / "r", progress=False)
    for _ in range(3):  # Adam moments and the EMA under way
        trainer._iteration({})
    trainer.guard.snapshot(3)
    good = _training_state(trainer)
    real_loss = trainer.variant.loss
    poisoned = {"on": False}

    def loss(phase, batch, ctx):
        value, scalars = real_loss(phase, batch, ctx)
        return (value * math.nan if poisoned["on"] else value), scalars

    monkeypatch.setattr(trainer.variant, "loss", loss)
    for rollbacks in (1, 2):
        poisoned["on"] = False
        trainer._iteration({})  # finite D and G steps move the weights, the moments and the EMA
        assert _differing_parts(_training_state(trainer), good) == {"variant", "optim", "ema"}
        poisoned["on"] = True
        trainer._iteration({})  # the D step is NaN: with patience 1 the guard rolls back at once
        assert trainer.guard.rollbacks == rollbacks
        assert _differing_parts(_training_state(trainer), good) == set()


@pytest.mark.parametrize("stop", [1, 7])
def test_a_rollback_after_a_resume_returns_where_the_uninterrupted_run_does(tmp_path, ring_cfg, stop):
    """The guard's snapshot (older than the checkpoint) and its streaks travel in the checkpoint: a run stopped at
    step `stop` and resumed rolls back to the same state, and ends with the same weights, as one never stopped."""
    unstable = ["optim.lr_d=1e6", "optim.lr_g=1e6", "train.rollback_lr_factor=1e-6", "train.max_rollbacks=5",
                "train.log_every=1", "train.steps=40"]
    whole = tmp_path / "whole"
    Trainer(ring_cfg(*unstable), whole, progress=False).fit()
    parted = tmp_path / "parted"
    Trainer(ring_cfg(*unstable, f"train.steps={stop}"), parted, progress=False).fit()
    Trainer(ring_cfg(*unstable), parted, resume=True, progress=False).fit()
    events = [[(e["step"], e["event"], e.get("restored_step")) for e in read_logs(run / "logs.jsonl")
               if e.get("event") in ("rollback", "diverged")] for run in (whole, parted)]
    assert events[0] == events[1] and [e[1:] for e in events[0]] == [("rollback", 0)]
    final = [read_checkpoint(run / "checkpoints" / "step-40")[1]["model.safetensors"]
             for run in (whole, parted)]
    assert final[0].keys() == final[1].keys() and all(torch.equal(final[0][k], final[1][k]) for k in final[0])


def test_a_rollback_returns_to_the_latest_good_state_not_the_start(tmp_path, ring_cfg, monkeypatch):
    """Catches the trainer's periodic snapshots not taken: a rollback at step 25 would go back to step 0."""
    from gankit.variants.gan import GAN

    run = tmp_path / "r"
    trainer = Trainer(ring_cfg("train.steps=30", "train.checkpoint_every=20", "train.nan_patience=1"), run,
                      progress=False)
    real_loss = GAN.loss

    def loss(self, phase, batch, ctx):
        value, scalars = real_loss(self, phase, batch, ctx)
        return (value * math.nan if trainer.step == 24 else value), scalars

    monkeypatch.setattr(GAN, "loss", loss)
    trainer.fit()
    assert [e["restored_step"] for e in read_logs(run / "logs.jsonl") if e.get("event") == "rollback"] == [20]
