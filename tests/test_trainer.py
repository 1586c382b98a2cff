"""The trainer: exact resume, determinism, checkpoints, logs, EMA and loading without the trainer."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import train_until_interrupted
import gankit
from gankit.train import Trainer, list_checkpoints, read_logs
from gankit.variants import resolve


def _g_weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_resume_with_raised_steps_is_bit_identical(tmp_path, ring_cfg):
    straight = tmp_path / "A"
    Trainer(ring_cfg("train.steps=200", "seed=1", "train.checkpoint_every=50"), straight, progress=False).fit()
    split = tmp_path / "B"
    Trainer(ring_cfg("train.steps=100", "seed=1", "train.checkpoint_every=50"), split, progress=False).fit()
    Trainer(ring_cfg("train.steps=200", "seed=1", "train.checkpoint_every=50"), split, resume=True, progress=False).fit()
    a, b = _g_weights(straight), _g_weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # logs of the resumed run continue where the first part stopped, without duplicated steps
    steps = [r["step"] for r in read_logs(split / "logs.jsonl") if "event" not in r]
    assert steps == sorted(set(steps)) and steps[-1] == 200


def test_interrupted_stabilised_run_resumes_bit_identically(tmp_path, ring_cfg):
    """Every stabiliser at once, stopped at step 70 as Ctrl-C would, then resumed (schedules keep train.steps)."""
    cfg = ring_cfg("train.steps=150", "seed=2", "model.spectral_norm=true", "model.pack=2", "model.minibatch_std=true",
                   "optim.ema=0.99", "loss.r1_weight=0.5", "loss.reg_every=3", "train.instance_noise=0.05",
                   "loss.feature_matching=0.1", "loss.label_smoothing=0.1")
    straight, split = tmp_path / "A", tmp_path / "B"
    Trainer(cfg, straight, progress=False).fit()
    assert train_until_interrupted(cfg, split, 70) == 70
    Trainer(cfg, split, resume=True, progress=False).fit()
    a, b = _g_weights(straight), _g_weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_yaml_keeps_the_overrides_a_resume_was_given(tmp_path, ring_cfg, cli):
    """A resume's overrides are part of the run: a later plain resume keeps them, and config.yaml re-runs it."""
    run = tmp_path / "r"
    Trainer(ring_cfg("train.steps=10"), run, progress=False).fit()
    assert cli("train", "--resume", str(run), "train.steps=20", "optim.lr_g=0.001", "--no-progress")[0] == 0
    assert cli("train", "--resume", str(run), "train.steps=30", "--no-progress")[0] == 0
    saved = resolve(str(run / "config.yaml"))[0]
    assert saved.train.steps == 30 and saved.optim.lr_g == 0.001
    state = json.loads((run / "checkpoints" / "step-30" / "state.json").read_text())
    assert state["optim"]["G"]["param_groups"][0]["lr"] == pytest.approx(0.001)  # the last session trained with it


def test_same_seed_same_samples_and_different_seed_differs(tmp_path, ring_cfg):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        Trainer(ring_cfg(f"seed={seed}"), tmp_path / name, progress=False).fit()
    sa, sb, sc = (gankit.load(tmp_path / n).sample(100, seed=7) for n in "abc")
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)
    g = gankit.load(tmp_path / "a")
    assert torch.equal(g.sample(10, seed=3), g.sample(10, seed=3)) and not torch.equal(g.sample(10, seed=3),
                                                                                        g.sample(10, seed=4))


def test_run_directory_layout_and_pruning(tmp_path, ring_cfg):
    run = tmp_path / "run"
    Trainer(ring_cfg("train.checkpoint_every=10", "train.keep_checkpoints=2", "train.sample_every=30"), run,
            progress=False).fit()
    assert [p.name for p in list_checkpoints(run)] == ["step-50", "step-60"]
    state = json.loads((run / "checkpoints" / "step-60" / "state.json").read_text())
    assert state["step"] == 60 and set(state["files"]) == {"model.safetensors", "optim.safetensors"}
    assert (run / "config.yaml").is_file() and (run / "samples" / "step-30.png").is_file()
    assert not list((run / "checkpoints").glob(".tmp*"))
    records = [r for r in read_logs(run / "logs.jsonl") if "event" not in r]
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60]
    modes = [r for r in read_logs(run / "logs.jsonl") if r.get("event") == "modes"]
    assert [r["step"] for r in modes] == [30, 60] and all(0 <= r["modes"] <= 8 for r in modes)
    assert {"d_loss", "g_loss", "d_real", "d_fake", "grad_norm_D", "grad_norm_G", "it_s", "diversity"} <= records[-1].keys()
    assert 0 < records[-1]["d_real"] < 1


def test_n_critic_runs_more_discriminator_steps(tmp_path, ring_cfg):
    trainer = Trainer(ring_cfg("train.steps=4", "train.n_critic=3"), tmp_path / "r", progress=False)
    trainer.fit()
    adam_steps = {g: int(next(iter(o.state.values()))["step"]) for g, o in trainer.optimizers.items()}
    assert adam_steps == {"D": 12, "G": 4}
    assert trainer.sampler.cursor == 4 * (3 + 1) * trainer.cfg.train.batch_size


def test_a_phase_computes_gradients_for_its_own_group_only(tmp_path, ring_cfg):
    """G's step backpropagates through D but must leave D's gradients as D's own step left them (computing them
    would cost D's weight-gradient products for nothing)."""
    trainer = Trainer(ring_cfg("train.steps=1"), tmp_path / "r", progress=False)
    d_opt = trainer.optimizers["D"]
    at_d_step = {}
    step = d_opt.step

    def keep_then_step(*args, **kwargs):
        at_d_step.update({id(p): p.grad.clone() for g in d_opt.param_groups for p in g["params"]})
        return step(*args, **kwargs)

    d_opt.step = keep_then_step
    trainer._iteration({})
    d_params = [p for g in d_opt.param_groups for p in g["params"]]
    g_params = [p for g in trainer.optimizers["G"].param_groups for p in g["params"]]
    assert at_d_step and all(torch.equal(p.grad, at_d_step[id(p)]) for p in d_params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g_params)


def test_ema_weights_are_exported_and_differ_from_raw(tmp_path, ring_cfg):
    trainer = Trainer(ring_cfg("optim.ema=0.9"), tmp_path / "r", progress=False)
    trainer.fit()
    exported = _g_weights(tmp_path / "r")
    raw = trainer.variant.generator_state()
    assert exported.keys() == raw.keys()
    assert any(not torch.equal(exported[k], raw[k]) for k in raw)
    assert json.loads((tmp_path / "r" / "model" / "config.json").read_text())["weights"] == "ema"


def test_ema_is_a_warmed_up_lerp_towards_the_live_weights():
    """Catches the EMA's decay applied the wrong way round (shadow <- (1 - d) shadow + d param) or without warm-up."""
    from gankit.train.ema import EMA

    model = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, ["weight"], decay=0.9)
    torch.nn.init.ones_(model.weight)
    ema.update(model)  # first update: d = min(0.9, 2 / 11)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1 - 2 / 11))
    ema.updates = 200  # warmed up: d = 0.9
    before = ema.shadow["weight"].clone()
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], 0.9 * before + 0.1)


def test_progress_grids_and_the_checkpoint_fallback_use_the_ema_weights(tmp_path, ring_cfg):
    """Catches sample grids drawn with the raw weights, and gankit.load's fallback (model/ damaged) reading the
    checkpoint's raw weights instead of its EMA."""
    run = tmp_path / "r"
    trainer = Trainer(ring_cfg("optim.ema=0.9"), run, progress=False)
    trainer.fit()
    raw = trainer.variant.generate(trainer.fixed).detach()
    with trainer.ema.swapped(trainer.variant):
        averaged = trainer.variant.generate(trainer.fixed).detach()
    assert not torch.allclose(raw, averaged)
    assert torch.allclose(trainer.sample_fixed(), averaged)
    exported = gankit.load(run).sample(50, seed=3)
    (run / "model" / "model.safetensors").write_bytes(b"damaged")
    fallback = gankit.load(run).sample(50, seed=3)  # warns, and reads the newest verified checkpoint
    assert torch.allclose(fallback, exported)


def test_load_accepts_model_folder_and_checks_truncation(tmp_path, ring_cfg):
    Trainer(ring_cfg(), tmp_path / "r", progress=False).fit()
    g = gankit.load(tmp_path / "r" / "model")
    assert g.sample(5, seed=0).shape == (5, 2) and g.kind == "vector"
    truncated = g.sample(2000, seed=0, truncation=0.25)
    assert truncated.std() < g.sample(2000, seed=0).std()
    with pytest.raises(gankit.UserError, match="truncation"):
        g.sample(5, truncation=0)


def test_digits_dcgan_step_runs_and_samples_images(tmp_path):
    cfg = gankit.load_config("digits-dcgan", ["train.steps=3", "model.width=8", "train.sample_every=0"])
    Trainer(cfg, tmp_path / "d", progress=False).fit()
    x = gankit.load(tmp_path / "d").sample(4, seed=0)
    assert x.shape == (4, 1, 16, 16) and x.min() >= -1 and x.max() <= 1


def test_channels_last_is_the_same_training_in_another_memory_layout(tmp_path):
    """NHWC weights while training; the exported weights are contiguous and draw what a default run's draw, up to
    float rounding; a channels-last run resumes exactly (its optimizer moments are laid out like their weights)."""
    over = ["train.steps=4", "model.width=8", "train.sample_every=0", "train.checkpoint_every=2"]
    fast = Trainer(gankit.load_config("digits-dcgan", [*over, "train.channels_last=true"]), tmp_path / "b",
                   progress=False)
    convs = [p for p in fast.variant.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert any(not p.is_contiguous() for p in convs)  # a 1-channel kernel is both layouts at once
    fast.fit()
    Trainer(gankit.load_config("digits-dcgan", over), tmp_path / "a", progress=False).fit()
    a, b = _g_weights(tmp_path / "a"), _g_weights(tmp_path / "b")
    # rounding differs, so Adam's early, sign-like steps can differ by ~lr per weight: compare what G draws
    xa, xb = (gankit.load(tmp_path / run).sample(16, seed=0) for run in "ab")
    assert a.keys() == b.keys() and float((xa - xb).abs().mean()) < 0.01
    assert all(b[k].is_contiguous() for k in b)
    cut = tmp_path / "c"
    Trainer(gankit.load_config("digits-dcgan", [*over, "train.steps=2", "train.channels_last=true"]), cut,
            progress=False).fit()
    Trainer(gankit.load_config("digits-dcgan", [*over, "train.channels_last=true"]), cut, resume=True,
            progress=False).fit()
    c = _g_weights(cut)
    assert all(torch.equal(b[k], c[k]) for k in b)


def test_channels_last_lays_out_2d_convs_beside_a_video_ds_3d_convs(tmp_path):
    """A model with 3D convs (MoCoGAN's D_V) trains channels-last: its 4-D weights are NHWC, its 5-D ones keep
    their layout (torch's Module.to refuses such a model)."""
    tiny = ["data.n=16", "mocogan.g_width=8", "mocogan.d_width=8", "mocogan.content_dim=4", "mocogan.motion_dim=4",
            "train.batch_size=4", "train.steps=1", "train.sample_every=0", "train.checkpoint_every=0"]
    trainer = Trainer(gankit.load_config("moving-shapes-video", [*tiny, "train.channels_last=true"]), tmp_path / "v",
                      progress=False)
    convs = {p.dim(): p for p in trainer.variant.parameters() if p.dim() >= 4 and p.shape[1] > 1}
    assert convs[4].is_contiguous(memory_format=torch.channels_last) and not convs[4].is_contiguous()
    assert convs[5].is_contiguous()
    trainer.fit()


def test_bf16_precision_runs_the_nets_in_bf16_and_keeps_losses_and_weights_fp32(tmp_path):
    over = ["train.steps=3", "model.width=8", "train.sample_every=0", "train.log_every=1"]
    fast = Trainer(gankit.load_config("digits-dcgan", [*over, "train.precision=bf16"]), tmp_path / "b",
                   progress=False)
    seen = []
    fast.variant.D.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    fast.fit()
    assert seen and set(seen) == {torch.bfloat16}  # autocast reached D's forward passes in training
    assert all(p.dtype == torch.float32 for p in fast.variant.parameters())
    Trainer(gankit.load_config("digits-dcgan", over), tmp_path / "a", progress=False).fit()
    first = [next(r for r in read_logs(tmp_path / run / "logs.jsonl") if "d_loss" in r) for run in "ab"]
    assert first[0]["d_loss"] != first[1]["d_loss"]  # bf16 changed the arithmetic ...
    assert abs(first[0]["d_loss"] - first[1]["d_loss"]) < 0.02 * first[0]["d_loss"]  # ... not the training
    x = gankit.load(tmp_path / "b").sample(4, seed=0)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()  # sampling runs in fp32


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_bf16_on_a_cpu_with_amx_only_and_the_run_record_says_which(tmp_path, monkeypatch, amx):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    over = ["train.steps=2", "model.width=8", "train.sample_every=0", "train.precision=auto"]
    trainer = Trainer(gankit.load_config("digits-dcgan", over), tmp_path / "r", progress=False)
    seen = []
    trainer.variant.D.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer.fit()
    assert set(seen) == {torch.bfloat16 if amx else torch.float32}
    assert json.loads((tmp_path / "r" / "run.json").read_text())["sessions"][0]["precision"] == ("bf16" if amx
                                                                                               else "fp32")


def test_named_precisions_are_kept_whatever_the_cpu(monkeypatch):
    from gankit.train.trainer import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert [resolve_precision(p, torch.device("cpu")) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # a torch without the probe: fp32, the safe choice
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


FP16 = ["model.width=8", "train.sample_every=0", "train.log_every=1", "train.precision=fp16"]


def test_fp16_precision_scales_the_loss_per_group_and_trains_like_fp32(tmp_path):
    fast = Trainer(gankit.load_config("digits-dcgan", ["train.steps=3", *FP16]), tmp_path / "h", progress=False)
    seen = []
    fast.variant.D.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    fast.fit()
    assert seen and set(seen) == {torch.float16}
    assert all(p.dtype == torch.float32 for p in fast.variant.parameters())
    Trainer(gankit.load_config("digits-dcgan", ["train.steps=3", *FP16[:-1]]), tmp_path / "f", progress=False).fit()
    first = [next(r for r in read_logs(tmp_path / run / "logs.jsonl") if "d_loss" in r) for run in "hf"]
    assert first[0]["d_loss"] != first[1]["d_loss"] and abs(first[0]["d_loss"] - first[1]["d_loss"]) < 0.02
    assert first[0]["loss_scale_D"] == first[0]["loss_scale_G"] == 65536.0 and first[0]["fp16_overflows"] == 0


def _huge_scales(trainer: Trainer) -> Trainer:
    """Loss scales so large that the first fp16 steps overflow, as a too-optimistic scaler would."""
    trainer.scalers = {g: torch.amp.GradScaler("cpu", init_scale=2.0**60) for g in trainer.scalers}
    return trainer


def test_fp16_overflows_lower_the_scale_without_waking_the_nan_guard_and_resume_keeps_the_scale(tmp_path):
    cfg = gankit.load_config("digits-dcgan", ["train.steps=4", *FP16])
    _huge_scales(Trainer(cfg, tmp_path / "a", progress=False)).fit()
    logs = read_logs(tmp_path / "a" / "logs.jsonl")
    assert sum(r.get("fp16_overflows", 0) for r in logs) >= 4  # both groups skipped their first steps ...
    assert not any(r.get("event") == "rollback" or r.get("skipped_nonfinite") for r in logs)  # ... quietly
    assert logs[-1]["loss_scale_D"] < 2.0**60
    _huge_scales(Trainer(gankit.load_config("digits-dcgan", ["train.steps=2", *FP16]), tmp_path / "b",
                         progress=False)).fit()
    Trainer(cfg, tmp_path / "b", resume=True, progress=False).fit()  # a fresh scaler starts at 2**16: restored
    a, b = _g_weights(tmp_path / "a"), _g_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_logs(tmp_path / "b" / "logs.jsonl")[-1]["loss_scale_D"] == logs[-1]["loss_scale_D"]


@pytest.mark.slow
def test_compiled_nets_train_like_eager_ones_and_resume_from_the_run_cache(tmp_path, ring_cfg):
    eager, fast = ring_cfg("train.steps=4", "train.checkpoint_every=2"), ring_cfg("train.steps=4", "train.compile=true")
    Trainer(eager, tmp_path / "a", progress=False).fit()
    Trainer(fast, tmp_path / "b", progress=False).fit()
    a, b = _g_weights(tmp_path / "a"), _g_weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # same names, same maths
    assert any((tmp_path / "b" / ".compile-cache").iterdir())
    cold = next(r for r in read_logs(tmp_path / "b" / "logs.jsonl") if r.get("event") == "compile")["seconds"]
    more = ring_cfg("train.steps=6", "train.compile=true")
    torch._dynamo.reset()  # as in a new process: only the run's on-disk cache is left
    Trainer(more, tmp_path / "b", resume=True, progress=False).fit()
    warm = [r for r in read_logs(tmp_path / "b" / "logs.jsonl") if r.get("event") == "compile"][-1]["seconds"]
    assert warm < cold / 2


def test_games_compute_in_float32_from_bf16_logits():
    from gankit import losses

    real, fake = torch.randn(64).bfloat16(), torch.randn(64).bfloat16()
    for game in losses.GAMES.values():
        assert game.d(real, fake).dtype == torch.float32 and game.g(fake).dtype == torch.float32
    assert torch.allclose(losses.d_bce(real, fake), losses.d_bce(real.float(), fake.float()))


def test_public_api_evaluates_diagnoses_and_compares(tmp_path, ring_cfg):
    import numpy as np

    Trainer(ring_cfg(), tmp_path / "r", progress=False).fit()
    assert gankit.evaluate(tmp_path / "r")["protocol"]["samples"] == 2500
    assert isinstance(gankit.diagnose(tmp_path / "r").problems, list)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", samples=rng.normal(size=(500, 2)))
    np.savez(tmp_path / "b.npz", samples=rng.normal(size=(500, 2)) + 3)
    near = gankit.fid(tmp_path / "a.npz", tmp_path / "a.npz", features="raw")["fid"]
    far = gankit.fid(tmp_path / "a.npz", tmp_path / "b.npz", features="raw")["fid"]
    assert abs(near) < 1e-6 and far == pytest.approx(18.0, rel=0.2)  # ‖Δμ‖² = 9 + 9


def test_fp16_with_dp_sgd_is_refused_before_the_run_directory_is_written(tmp_path):
    cfg = gankit.load_config("ring8-gan", ["train.precision=fp16", "privacy.epsilon=1", "train.steps=2"])
    with pytest.raises(gankit.UserError, match="privacy.epsilon clips each example's gradient"):
        Trainer(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("schedule, start", [("linear", 0.0), ("linear", 0.5), ("cosine", 0.0)])
def test_learning_rates_follow_the_schedule_for_both_players(tmp_path, ring_cfg, schedule, start):
    """Catches optim.schedule ignored, applied to one player only, or decay_start ignored: at each step both groups'
    rates are the configured ones times the schedule's factor (1 before decay_start, 0 at the end)."""
    import math

    trainer = Trainer(ring_cfg("train.steps=20", "optim.lr_d=0.004", "optim.lr_g=0.002",
                               f"optim.schedule={schedule}", f"optim.decay_start={start}"), tmp_path / "r",
                      progress=False)
    seen = []
    iteration = trainer._iteration

    def record(window):
        iteration(window)
        seen.append({g: o.param_groups[0]["lr"] for g, o in trainer.optimizers.items()})

    trainer._iteration = record
    trainer.fit()
    for step, lrs in enumerate(seen):
        progress = max(0.0, step / 20 - start) / (1 - start)
        factor = 1 - progress if schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
        assert lrs == pytest.approx({"D": 0.004 * factor, "G": 0.002 * factor}, rel=1e-9), step
    assert seen[-1]["D"] < 0.004 * 0.2  # decayed most of the way by the last step
