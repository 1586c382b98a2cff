"""PGGAN and StyleGAN-lite: growth schedule and fades, equalised lr and pixel norm, exact resume mid-fade, modulated
convs, style mixing, truncation in w, path-length regularisation, the mixing grid, and perceptual path length."""

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import gankit
from gankit import losses
from gankit.data import load_dataset
from gankit.metrics.ppl import perceptual_path_length, slerp
from gankit.nets.blocks import EqualConv2d, PixelNorm
from gankit.nets.progressive import ProgressiveDiscriminator, ProgressiveGenerator
from gankit.nets.style import ModulatedConv, StyleGenerator
from gankit.train import Trainer
from gankit.variants import Context, Request, build_variant, resolve
from gankit.variants.gan import FAKE
from gankit.variants.pggan import schedule

from conftest import train_until_interrupted, variant_and_batch

TINY_PG = ["data.n=64", "data.resolution=16", "model.width=4", "model.z_dim=8", "train.batch_size=8",
           "pggan.fade_images=24", "pggan.stable_images=16", "train.sample_every=0", "train.log_every=1"]
TINY_STYLE = ["data.n=64", "data.resolution=16", "model.width=4", "model.z_dim=8", "train.batch_size=8",
              "stylegan.w_dim=8", "stylegan.mapping_depth=2", "train.sample_every=0", "train.log_every=1"]


# ----------------------------------------------------------------------------------------------- PGGAN


@pytest.mark.parametrize("flag", [True, False])
def test_the_pggan_switches_build_what_they_name(flag):
    """Catches pggan.pixel_norm, pggan.equalized_lr or model.minibatch_std accepted but not read (the image-families
    ablations would then compare identical models)."""
    from gankit.nets.blocks import EqualConv2d, EqualLinear, MinibatchStd, PixelNorm

    on = str(flag).lower()
    variant, _ = variant_and_batch("shapes32-pggan", *TINY_PG, f"pggan.pixel_norm={on}",
                                   f"pggan.equalized_lr={on}", f"model.minibatch_std={on}")
    assert any(isinstance(m, PixelNorm) for m in variant.G.modules()) is flag
    assert any(isinstance(m, MinibatchStd) for m in variant.D.modules()) is flag
    equal = [m for m in variant.modules() if isinstance(m, (EqualConv2d, EqualLinear))]
    assert equal and all((m.scale != 1.0) is flag for m in equal)  # off: He's constant stored in the weights


def test_schedule_is_stabilise_then_fade_and_stabilise_per_side():
    windows = schedule([4, 8, 16], 4, fade=3, stable=2)
    assert [(w.level, w.fade, w.start, w.stop) for w in windows] == [
        (0, False, 0, 2), (1, True, 2, 5), (1, False, 5, 7), (2, True, 7, 10), (2, False, 10, None)]
    assert [(w.level, w.start) for w in schedule([4, 8, 16], 8, fade=0, stable=2)] == [(1, 0), (2, 2)]


def test_stage_follows_the_step_and_phases_repeat_per_window():
    variant, _ = variant_and_batch("shapes32-pggan", *TINY_PG)  # 16 images per stabilisation: 2 steps; fade 3 steps
    assert variant.stage_at(0) == (0, 1.0) and variant.stage_at(2) == (1, 0.0)
    assert variant.stage_at(3) == (1, pytest.approx(1 / 3)) and variant.stage_at(5) == (1, 1.0)
    assert variant.stage_at(10_000) == (2, 1.0)
    assert [(p.name, p.start, p.stop) for p in variant.phases[:4]] == [("D", 0, 2), ("D_reg", 0, 2), ("G", 0, 2),
                                                                         ("D", 2, 5)]
    assert variant.phases[1].every == 16  # lazy R1 in every window
    assert variant.phases[-1].stop is None


def _grown(cls, *args, **kwargs):
    torch.manual_seed(0)
    return cls(*args, **kwargs)


def test_generator_fades_from_the_upsampled_lower_level():
    G = _grown(ProgressiveGenerator, 8, 3, 16, width=4)
    z = torch.randn(5, 8)
    G.set_stage(1, 1.0)
    low = G.native(z)
    assert low.shape == (5, 3, 8, 8) and G(z).shape == (5, 3, 16, 16)
    assert torch.equal(G(z), F.interpolate(low, scale_factor=2, mode="nearest"))  # progress grids at full size
    G.set_stage(2, 0.0)
    assert torch.allclose(G.native(z), F.interpolate(low, scale_factor=2, mode="nearest"), atol=1e-6)
    G.set_stage(2, 1.0)
    full = G.native(z)
    G.set_stage(2, 0.25)
    assert torch.allclose(G.native(z), torch.lerp(F.interpolate(low, scale_factor=2), full, 0.25), atol=1e-5)


def test_discriminator_fades_in_its_new_fromrgb_path():
    D = _grown(ProgressiveDiscriminator, 3, 16, width=4)
    x = torch.randn(4, 3, 16, 16)
    D.set_stage(1, 1.0)
    old = D(F.avg_pool2d(x, 2))
    assert torch.equal(D(x), old)  # larger inputs are pooled to the stage's side
    D.set_stage(2, 0.0)
    assert torch.allclose(D(x), old, atol=1e-5)  # the new level contributes nothing yet
    D.set_stage(2, 1.0)
    assert not torch.allclose(D(x), old, atol=1e-3)


def test_reals_are_shown_at_the_stage_side_and_blended_like_the_fakes():
    variant, batch = variant_and_batch("shapes32-pggan", *TINY_PG)
    x = batch.x
    variant.enter_stage(0)
    assert torch.equal(variant.staged_real(x), F.avg_pool2d(x, 4))
    variant.enter_stage(2)  # the first step of the 8×8 fade: alpha 0
    half = F.avg_pool2d(x, 4)
    assert torch.allclose(variant.staged_real(x), F.interpolate(half, scale_factor=2), atol=1e-6)
    variant.enter_stage(100)
    assert torch.equal(variant.staged_real(x), x)


def test_pggan_d_loss_is_wasserstein_plus_penalty_plus_drift():
    """Catches the drift term dropped or with its sign flipped, and reals and fakes swapped in the critic."""
    variant, batch = variant_and_batch("shapes32-pggan", *TINY_PG, "loss.name=wasserstein", "loss.gp_weight=10",
                                       "loss.drift=0.001", "loss.r1_weight=0")
    torch.manual_seed(1)
    ctx = Context(step=3)
    loss, scalars = variant.loss("D", batch, ctx)
    real = variant.staged_real(batch.x)
    fake = ctx.values[FAKE][0].detach()
    real_logits, fake_logits = variant.D(real), variant.D(fake)
    expected = (losses.d_wasserstein(real_logits, fake_logits) + 10 * scalars["gradient_penalty"]
                + 0.001 * real_logits.square().mean())
    assert scalars["drift"].item() == pytest.approx(real_logits.square().mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert fake.shape[-1] == real.shape[-1] == 8 and scalars["resolution"].item() == 8


def test_equalised_lr_keeps_the_function_but_scales_the_gradient():
    torch.manual_seed(0)
    eq = EqualConv2d(4, 6, 3)
    torch.manual_seed(0)
    plain = EqualConv2d(4, 6, 3, equalized=False)
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(eq(x), plain(x), atol=1e-5)
    eq(x).sum().backward()
    plain(x).sum().backward()
    assert torch.allclose(eq.weight.grad, plain.weight.grad * eq.scale, rtol=1e-4)  # He's constant, applied at run time
    assert eq.weight.std().item() == pytest.approx(1, abs=0.2)


def test_pixel_norm_gives_every_pixel_unit_mean_square():
    y = PixelNorm()(torch.randn(3, 7, 4, 4) * 5)
    assert torch.allclose(y.square().mean(1), torch.ones(3, 4, 4), atol=1e-4)


def test_pggan_resumed_mid_fade_equals_the_uninterrupted_run(tmp_path):
    """The stage, the optimizer state of layers that appeared during training and the EMA all come back exactly."""
    overrides = [*TINY_PG, "train.steps=8", "train.checkpoint_every=0"]
    cfg = resolve("shapes32-pggan", overrides)[0]
    straight, split = tmp_path / "A", tmp_path / "B"
    Trainer(cfg, straight, progress=False).fit()
    assert train_until_interrupted(cfg, split, 4) == 4  # the last step run, 3, was a third into the 8×8 fade
    trainer = Trainer(cfg, split, resume=True, progress=False)
    assert (int(trainer.variant.G.level), float(trainer.variant.G.alpha)) == (1, pytest.approx(1 / 3))
    trainer.fit()
    for name in ("checkpoints/step-8/model.safetensors", "checkpoints/step-8/optim.safetensors",
                 "model/model.safetensors"):
        a, b = load_file(str(straight / name)), load_file(str(split / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_optimizer_state_of_a_level_appears_when_it_does(tmp_path):
    cfg = resolve("shapes32-pggan", [*TINY_PG, "train.steps=2", "train.checkpoint_every=0"])[0]
    trainer = Trainer(cfg, tmp_path / "r", progress=False)
    trainer.fit()  # two steps at 4×4
    G, opt = trainer.variant.G, trainer.optimizers["G"]
    assert all(p not in opt.state for p in G.blocks[0].parameters())  # the 8×8 block has not been used yet
    assert all(p in opt.state for p in G.base.parameters())
    trainer.cfg.train.steps = 4
    trainer.fit()  # into the 8×8 fade
    assert all(p in opt.state for p in G.blocks[0].parameters())
    assert all(p not in opt.state for p in G.blocks[1].parameters())


def test_pggan_samples_at_full_size_while_growing(tmp_path):
    Trainer(resolve("shapes32-pggan", [*TINY_PG, "train.steps=3"])[0], tmp_path / "r", progress=False).fit()
    g = gankit.load(tmp_path / "r")
    assert g.variant.G.size == 8 and g.sample(4, seed=0).shape == (4, 3, 16, 16)
    assert torch.equal(g.sample(4, seed=0), g.sample(4, seed=0))


# ----------------------------------------------------------------------------------------------- StyleGAN-lite


def test_modulated_conv_equals_per_sample_modulated_and_demodulated_weights():
    torch.manual_seed(0)
    conv = ModulatedConv(4, 5, 3, w_dim=6)
    with torch.no_grad():
        conv.affine.weight.normal_()
    x, w = torch.randn(3, 4, 7, 7), torch.randn(3, 6)
    style = conv.affine(w)
    outs = []
    for i in range(3):  # StyleGAN2's definition, one sample at a time
        weight = conv.weight * conv.scale * style[i][None, :, None, None]
        weight = weight / weight.square().sum((1, 2, 3), keepdim=True).add(1e-8).sqrt()
        outs.append(F.conv2d(x[i : i + 1], weight, padding=1))
    assert torch.allclose(conv(x, w), torch.cat(outs), atol=1e-5)


def _style_g() -> StyleGenerator:
    torch.manual_seed(0)
    return StyleGenerator(8, 8, 3, 16, width=4, mapping_depth=2)


def test_styles_split_into_coarse_middle_fine_layers():
    G = _style_g()
    assert G.num_ws == 5 and G.parts == {"coarse": [0], "middle": [1, 2], "fine": [3, 4]}


def test_each_layer_reads_its_own_style():
    """Catches layers that all read the first style (mixing would then change nothing)."""
    G = _style_g().eval()
    z = torch.randn(2, 8)
    ws = G.styles(z)
    for j in range(G.num_ws):
        other = ws.clone()
        other[:, j] = torch.randn(2, 8)
        assert not torch.allclose(G.synthesis(other), G.synthesis(ws), atol=1e-5), j


def test_truncation_pulls_w_toward_its_running_mean():
    G = _style_g()
    G.train()
    z = torch.randn(64, 8)
    G.mapping(z)
    beta = G.mapping.avg_beta
    with torch.no_grad():  # tracked while training: w_avg <- β w_avg + (1 − β) mean(w), from 0
        assert torch.allclose(G.mapping.w_avg, (1 - beta) * G.mapping.net(z).mean(0), atol=1e-6)
    avg = G.mapping.w_avg.clone()
    G.eval()
    z = torch.randn(6, 8)
    G.mapping(z)
    assert torch.equal(G.mapping.w_avg, avg)  # not while sampling
    assert torch.allclose(G.styles(z, psi=0.0), avg.expand(6, G.num_ws, -1))
    assert torch.allclose(G.styles(z, psi=0.5)[:, 0], torch.lerp(avg, G.mapping(z), 0.5), atol=1e-6)


def test_the_mapping_nets_learning_rate_multiplier_is_the_configured_one():
    """Catches stylegan.mapping_lr_mul not reaching the mapping net's layers (its ablation would change nothing)."""
    from gankit.nets.blocks import EqualLinear

    variant, _ = variant_and_batch("digits-stylegan", *TINY_STYLE, "stylegan.mapping_lr_mul=0.05")
    mapping = [m for m in variant.G.mapping.modules() if isinstance(m, EqualLinear)]
    assert mapping and all(m.lr_mul == 0.05 for m in mapping)
    others = [m for m in variant.G.modules() if isinstance(m, EqualLinear) and m not in mapping]
    assert others and all(m.lr_mul == 1.0 for m in others)  # the style affines learn at the full rate


def test_stylegan_truncates_in_w_only_also_when_refined_or_mixed():
    """Catches z truncated as well as w (StyleGAN truncates in w alone), and mixing grids drawn without ψ."""
    variant, _ = variant_and_batch("digits-stylegan", *TINY_STYLE)
    variant.eval()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(variant.noise(5, truncation=0.5, generator=g),
                       variant.noise(5, generator=torch.Generator().manual_seed(0)))
    z_a, z_b = torch.randn(3, 8), torch.randn(3, 8)
    with torch.no_grad():
        ws = variant.G.styles(z_a, 0.5).clone()
        layers = variant.G.parts["fine"]
        ws[:, layers] = variant.G.styles(z_b, 0.5)[:, layers]
        assert torch.allclose(variant.mix(z_a, z_b, "fine", truncation=0.5), variant.G.synthesis(ws).clamp(-1, 1))


def test_noise_is_fresh_while_training_and_fixed_when_sampling():
    G = _style_g()
    with torch.no_grad():
        for layer in G.layers:
            layer.noise_strength.fill_(1.0)
    z = torch.randn(2, 8)
    G.eval()
    assert torch.equal(G(z), G(z))
    G.train()
    assert not torch.allclose(G(z), G(z))


def test_style_mixing_in_training_swaps_in_a_second_latent():
    """Catches a mixing probability that is ignored (or mixing that happens with probability 0). Noise strengths
    start at 0, so only the styles can make the outputs differ."""
    variant, _ = variant_and_batch("shapes32-stylegan", *TINY_STYLE, "stylegan.mixing=1")
    z = torch.randn(4, 8)
    mixed = variant.g_forward(z, None)
    variant.options.mixing = 0.0
    plain = variant.g_forward(z, None)
    assert torch.allclose(plain, variant.G.synthesis(variant.G.styles(z)), atol=1e-6)
    assert not torch.allclose(mixed, plain, atol=1e-4)


def test_path_length_loss_is_the_squared_deviation_from_its_running_mean():
    variant, batch = variant_and_batch("shapes32-stylegan", *TINY_STYLE, "stylegan.pl_weight=2")
    assert [(p.name, p.every) for p in variant.phases] == [("D", 1), ("D_reg", 16), ("G", 1), ("G_reg", 4)]
    torch.manual_seed(5)
    loss, scalars = variant.loss("G_reg", batch, Context())
    lengths, mean = scalars["path_length"], variant.pl_mean
    assert mean.item() == pytest.approx(0.01 * lengths.item(), rel=1e-5)  # the running mean moved from 0
    assert loss.item() == pytest.approx(2 * 4 * scalars["pl_penalty"].item(), rel=1e-6)
    assert scalars["pl_penalty"].item() >= (lengths - mean).square().item() - 1e-6  # E[(l - a)²] ≥ (E[l] - a)²
    loss.backward()
    assert variant.G.mapping.net[1].weight.grad is not None and variant.G.const.grad is not None


def test_stylegan_d_step_raises_d_on_reals_and_lowers_it_on_fakes():
    variant, batch = variant_and_batch("shapes32-stylegan", *TINY_STYLE)
    ctx = Context()
    loss, _ = variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0].detach()
    with torch.no_grad():
        before = variant.D(batch.x).mean(), variant.D(fake).mean()
    loss.backward()
    torch.optim.SGD(variant.groups["D"].parameters(), lr=0.05).step()
    with torch.no_grad():
        assert variant.D(batch.x).mean() > before[0] and variant.D(fake).mean() < before[1]


def test_mixing_grid_and_truncation_from_the_cli(tmp_path, cli):
    Trainer(resolve("shapes32-stylegan", [*TINY_STYLE, "train.steps=2"])[0], tmp_path / "s", progress=False).fit()
    g = gankit.load(tmp_path / "s")
    grid, nrow = g.mixing_grid(1, 2, rows=3)
    assert nrow == 5 and grid.shape == (15, 3, 16, 16)
    a, b = g.sample(3, seed=1), g.sample(3, seed=2)
    assert torch.allclose(grid[0::5], a, atol=1e-6) and torch.allclose(grid[1::5], b, atol=1e-6)
    assert not torch.allclose(grid[2::5], a, atol=1e-4)  # B's coarse styles changed A
    spread = {t: g.sample(100, seed=0, truncation=t).var(0).mean().item() for t in (1.0, 0.5, 0.1)}
    assert spread[1.0] > spread[0.5] > spread[0.1]
    code, _, err = cli("sample", str(tmp_path / "s"), "--mix", "1,2", "-n", "10", "--out", str(tmp_path / "mix.png"))
    assert code == 0 and (tmp_path / "mix.png").is_file(), err
    code, _, err = cli("sample", str(tmp_path / "s"), "--mix", "1", "--out", str(tmp_path / "bad.png"))
    assert code == 2 and "two seeds" in err and not (tmp_path / "bad.png").exists()


def test_mix_is_refused_by_models_without_styles(tmp_path, cli):
    Trainer(resolve("shapes32-pggan", [*TINY_PG, "train.steps=1"])[0], tmp_path / "p", progress=False).fit()
    code, _, err = cli("sample", str(tmp_path / "p"), "--mix", "1,2", "--out", str(tmp_path / "mix.png"))
    assert code == 2 and "no per-layer styles" in err and not (tmp_path / "mix.png").exists()


@pytest.mark.parametrize("preset", ["shapes32-pggan", "shapes32-stylegan", "digits-stylegan"])
def test_presets_validate_and_build(preset):
    cfg = resolve(preset)[0]
    spec = load_dataset(cfg.data.model_copy(update={"n": 64})).spec()
    variant = build_variant(cfg, spec)
    assert variant.generate(Request(2)).shape == (2, *spec["shape"]) and cfg.description


# ----------------------------------------------------------------------------------------------- PPL


def test_ppl_of_a_linear_generator_is_the_squared_path_speed():
    """For G(w) = A·w and identity features, a lerp step of ε moves G by ε·A(b - a): PPL = E|A(b - a)|²."""
    torch.manual_seed(0)
    A = torch.randn(5, 3)
    a, b, t = torch.randn(200, 3), torch.randn(200, 3), torch.rand(200)
    value, per_path = perceptual_path_length(lambda w: w @ A.T, lambda x: x, a, b, t, space="w", epsilon=1e-2)
    expected = ((b - a) @ A.T).square().sum(1).double()
    assert torch.allclose(per_path, expected, rtol=1e-3)
    kept = expected[(expected >= expected.quantile(0.01)) & (expected <= expected.quantile(0.99))]
    assert value == pytest.approx(kept.mean().item(), rel=1e-3)
    double, _ = perceptual_path_length(lambda w: 2 * w @ A.T, lambda x: x, a, b, t, space="w", epsilon=1e-2)
    assert double == pytest.approx(4 * value, rel=1e-3)
    assert perceptual_path_length(lambda w: torch.zeros(len(w), 4), lambda x: x, a, b, t)[0] == 0


def test_slerp_takes_one_position_per_row():
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    rows = slerp(a, b, t[:, None])
    for i in range(4):
        assert torch.allclose(rows[i], slerp(a[i : i + 1], b[i : i + 1], float(t[i]))[0], atol=1e-5)
    assert torch.allclose(rows[0], a[0], atol=1e-5) and torch.allclose(rows[3], b[3], atol=1e-5)


def test_eval_reports_ppl_for_every_image_generator_and_ppl_w_for_stylegan(tmp_path, cli):
    Trainer(resolve("shapes32-stylegan", [*TINY_STYLE, "train.steps=1"])[0], tmp_path / "s", progress=False).fit()
    Trainer(resolve("shapes-dcgan", ["data.n=64", "data.resolution=16", "model.width=4", "train.steps=1",
                                     "train.sample_every=0"])[0], tmp_path / "d", progress=False).fit()
    style = gankit.evaluate(tmp_path / "s", n=40)
    assert style["ppl"] > 0 and style["ppl_w"] > 0
    assert style["protocol"]["ppl_w"]["space"] == "w" and style["protocol"]["ppl"]["interpolation"] == "slerp"
    assert "shapes features" in style["protocol"]["ppl"]["distance"]
    assert style["protocol"]["ppl"]["paths"] == 40  # -n paths, as measured
    code, out, _ = cli("eval", str(tmp_path / "d"), "-n", "40", "--json")
    assert code == 0 and '"ppl"' in out and '"ppl_w"' not in out
    assert math.isfinite(__import__("json").loads(out)["ppl"])


@pytest.mark.parametrize("preset, overrides, message", [
    ("shapes32-pggan", ["pggan.start_resolution=64"], "pggan.start_resolution=64 is not one of [4, 8, 16, 32]"),
    ("shapes32-pggan", ["data.name=ring"], "variant pggan generates images; the data is vector"),
    ("shapes32-stylegan", ["data.resolution=24"], "power-of-two resolution"),
])
def test_bad_settings_exit_2_before_training(cli, tmp_path, preset, overrides, message):
    code, _, err = cli("train", preset, *overrides, "--out", str(tmp_path / "r"))
    assert code == 2 and message in err and not (tmp_path / "r").exists()
