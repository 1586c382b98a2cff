"""VAE-GAN: the three losses recomputed by hand, each step moving what it should, reconstruction, the VAE baseline,
export and the reconstruct command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import variant_and_batch
from gankit import losses
from gankit.train import load
from gankit.variants import Context

# the by-hand losses compare D's outputs on unaugmented images: the preset's DiffAugment is off here, and its own
# test turns it back on
SMALL = ["model.width=8", "model.z_dim=8", "train.batch_size=16", "train.diffaug="]


def setup(*overrides: str):
    return variant_and_batch("digits-vaegan", *SMALL, *overrides)


def by_hand(variant, x: torch.Tensor, seed: int):
    """(G(z) for z ~ q(z|x), KL) with the noise `seed` draws, as reconstruct_sample draws it."""
    mu, log_var = variant.E(x).chunk(2, dim=1)
    log_var = log_var.clamp(-12, 6)
    torch.manual_seed(seed)
    z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
    kl = 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(1).mean()
    return variant.G(z), kl


def feature_distance(variant, x, rec):
    return (variant.D.features(x) - variant.D.features(rec)).pow(2).flatten(1).sum(1).mean()


def test_e_loss_is_beta_kl_plus_the_feature_distance_of_the_reconstruction():
    """Catches a dropped KL or reconstruction term, a flipped sign, or pixels compared where features are asked."""
    variant, batch = setup("vaegan.kl_weight=0.3")
    torch.manual_seed(5)
    loss, scalars = variant.loss("E", batch, Context())
    rec, kl = by_hand(variant, batch.x, 5)
    expected = 0.3 * kl + feature_distance(variant, batch.x, rec)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["kl"].item() == pytest.approx(kl.item(), rel=1e-5) and kl.item() > 0


def test_an_earlier_layer_measures_reconstructions_in_that_feature_map():
    """Catches `vaegan.layer` ignored (the last map used) or the wrong block tapped: -2 is D's first block, 8×8."""
    variant, batch = setup("vaegan.layer=-2", "vaegan.kl_weight=0.3")
    torch.manual_seed(5)
    loss, _ = variant.loss("E", batch, Context())
    rec, kl = by_hand(variant, batch.x, 5)
    first = variant.D.body[:2]  # conv, LeakyReLU: (N, width, 8, 8)
    assert first(batch.x).shape[-1] == 8
    expected = 0.3 * kl + (first(batch.x) - first(rec)).pow(2).flatten(1).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx((0.3 * kl + feature_distance(variant, batch.x, rec)).item(), rel=1e-3)


def test_a_layer_d_does_not_have_is_a_clear_error(cli):
    code, _, err = cli("train", "digits-vaegan", "vaegan.layer=-3", "train.steps=1", "--no-progress")
    assert code == 2 and "vaegan.layer=-3: D has 2 stride-2 blocks" in err and "Traceback" not in err


def d_phase(variant, batch):
    """D's loss and scalars, and the reconstructions and prior samples it was computed on (same noise)."""
    torch.manual_seed(3)
    loss, scalars = variant.loss("D", batch, Context())
    torch.manual_seed(3)
    with torch.no_grad():
        rec, _ = variant.reconstruct_sample(batch.x)
        prior = variant.G(variant.noise(len(batch)))
    return loss, scalars, rec, prior


def test_d_loss_is_the_game_on_reals_against_reconstructions_and_prior_samples():
    """Catches real and fake logits swapped, or one kind of fake left out of D's loss."""
    variant, batch = setup()
    loss, scalars, rec, prior = d_phase(variant, batch)
    real_logits, fake_logits = variant.D(batch.x), torch.cat([variant.D(rec), variant.D(prior)])
    assert loss.item() == pytest.approx(losses.d_bce(real_logits, fake_logits).item(), rel=1e-5)
    assert scalars["d_real"].item() == pytest.approx(real_logits.sigmoid().mean().item(), rel=1e-5)


def test_one_d_step_raises_d_on_reals_and_lowers_it_on_both_fakes():
    variant, batch = setup()
    loss, _, rec, prior = d_phase(variant, batch)
    with torch.no_grad():
        before = [variant.D(t).mean() for t in (batch.x, rec, prior)]
    loss.backward()
    torch.optim.SGD(variant.groups["D"].parameters(), lr=0.05).step()
    with torch.no_grad():
        after = [variant.D(t).mean() for t in (batch.x, rec, prior)]
    margin = lambda d: d[0] - (d[1] + d[2]) / 2  # noqa: E731 - reals over the mean of both kinds of fakes
    assert margin(after) > margin(before) + 0.1


def g_phase(variant, batch):
    """G's loss and scalars, and the reconstructions and prior samples (with their graph) it was computed on."""
    torch.manual_seed(9)
    loss, scalars = variant.loss("G", batch, Context())
    torch.manual_seed(9)
    with torch.no_grad():
        mu, log_var = variant.posterior(batch.x)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
    return loss, scalars, variant.G(z), variant.G(variant.noise(len(batch)))


def test_g_loss_is_gamma_times_the_reconstruction_plus_the_adversarial_term():
    """Catches a dropped or unweighted reconstruction term in G's loss, or prior samples left out of it."""
    variant, batch = setup("vaegan.gamma=0.25")
    loss, scalars, rec, prior = g_phase(variant, batch)
    adversarial = losses.g_non_saturating(torch.cat([variant.D(rec), variant.D(prior)]))
    expected = 0.25 * feature_distance(variant, batch.x, rec) + adversarial
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["g_adv"].item() == pytest.approx(adversarial.item(), rel=1e-5)


def test_diffaug_reaches_every_adversarial_input_of_d_and_no_reconstruction(monkeypatch):
    """Catches train.diffaug ignored (as it once was), applied to the reals or the fakes alone, or applied to the
    feature maps that measure reconstructions (which must compare clean images)."""
    import gankit.variants.vaegan as module

    monkeypatch.setattr(module, "diff_augment", lambda x, policy: x.flip(-1))  # deterministic stand-in
    variant, batch = setup("train.diffaug=translation", "vaegan.gamma=0.25")
    flip = lambda x: x.flip(-1)  # noqa: E731
    loss, _, rec, prior = d_phase(variant, batch)
    real_logits = variant.D(flip(batch.x))
    fake_logits = torch.cat([variant.D(flip(rec)), variant.D(flip(prior))])
    assert loss.item() == pytest.approx(losses.d_bce(real_logits, fake_logits).item(), rel=1e-5)
    clean = losses.d_bce(variant.D(batch.x), torch.cat([variant.D(rec), variant.D(prior)]))
    assert loss.item() != pytest.approx(clean.item(), rel=1e-3)

    loss, scalars, rec, prior = g_phase(variant, batch)
    adversarial = losses.g_non_saturating(torch.cat([variant.D(flip(rec)), variant.D(flip(prior))]))
    assert scalars["g_adv"].item() == pytest.approx(adversarial.item(), rel=1e-5)
    assert scalars["g_rec"].item() == pytest.approx(feature_distance(variant, batch.x, rec).item(), rel=1e-5)


def test_e_and_g_steps_bring_the_reconstruction_closer():
    """Catches a reconstruction term whose sign is flipped (the steps would push reconstructions away)."""
    variant, batch = setup("vaegan.kl_weight=0", "vaegan.gamma=1")
    opts = {g: torch.optim.Adam(variant.groups[g].parameters(), lr=2e-3) for g in ("E", "G")}

    def distance() -> float:
        with torch.no_grad():
            return float((variant.G(variant.encode(batch.x)) - batch.x).pow(2).mean())

    before = distance()
    for _ in range(15):
        for group in ("E", "G"):
            opts[group].zero_grad()
            variant.loss(group, batch, Context())[0].backward()
            opts[group].step()
    assert distance() < 0.8 * before


def test_the_vae_baseline_has_no_d_and_compares_pixels():
    variant, batch = setup("vaegan.adversarial=false", "vaegan.reconstruction=pixels")
    assert variant.D is None and [p.name for p in variant.phases] == ["E", "G"] and "D" not in variant.groups
    torch.manual_seed(1)
    loss, _ = variant.loss("E", batch, Context())
    rec, kl = by_hand(variant, batch.x, 1)
    expected = kl + (batch.x - rec).pow(2).flatten(1).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss, _, rec, _ = g_phase(variant, batch)  # without D, G's loss is the reconstruction distance alone
    assert loss.item() == pytest.approx((batch.x - rec).pow(2).flatten(1).sum(1).mean().item(), rel=1e-5)


def test_a_vae_without_d_cannot_compare_features(cli):
    code, _, err = cli("train", "digits-vaegan", "vaegan.adversarial=false", "train.steps=1", "--no-progress")
    assert code == 2 and "vaegan.reconstruction=pixels" in err


def test_latents_follow_the_input():
    """Catches an encoder whose input is ignored (every image would get the same latent, so the same redraw)."""
    variant, batch = setup()
    variant.eval()
    with torch.no_grad():
        a, b = variant.encode(batch.x[:4]), variant.encode(batch.x[4:8])
    assert (a - b).abs().mean() > 1e-4  # at init the latents are small; a zeroed input would make them equal


@pytest.fixture(scope="module")
def tiny_run(train_tiny):
    return train_tiny("digits-vaegan", *SMALL, "train.steps=3", "train.sample_every=0", "train.checkpoint_every=0")


def test_the_exported_model_reconstructs_as_the_trained_variant_does(tiny_run, tmp_path, cli):
    gen = load(tiny_run)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 1, 16, 16)).astype(np.float32))
    with torch.no_grad():
        expected = gen.variant.G(gen.variant.encode(x))
    assert torch.allclose(gen.reconstruct(x), expected, atol=1e-6)
    np.savez(tmp_path / "x.npz", samples=x.numpy())
    code, _, err = cli("reconstruct", str(tiny_run), str(tmp_path / "x.npz"), "--out", f"{tmp_path}/out/")
    assert code == 0, err
    assert len(list((tmp_path / "out").iterdir())) == 3
    code, out, _ = cli("eval", str(tiny_run), "--json", "-n", "200")
    import json

    values = json.loads(out)
    assert 0 < values["reconstruction_error"] < 1 and "reconstruction" in values["protocol"]


def test_reconstruct_refuses_a_model_without_an_encoder(train_tiny, tmp_path, cli):
    run = train_tiny("digits-dcgan", "model.width=8", "train.steps=1", "train.sample_every=0",
                     "train.checkpoint_every=0")
    np.savez(tmp_path / "x.npz", samples=np.zeros((1, 1, 16, 16), np.float32))
    code, _, err = cli("reconstruct", str(run), str(tmp_path / "x.npz"), "--out", str(tmp_path / "r.png"))
    assert code == 2 and "no encoder" in err and not (tmp_path / "r.png").exists()


def test_reconstruction_error_is_in_unit_pixels_on_rounded_redraws(tiny_run):
    import math

    from gankit.data import load_heldout
    from gankit.report.compare import round_to_8bit
    from gankit.report.evaluate import RECONSTRUCT_IMAGES, RUN_METRICS, RunEval

    run = RunEval(load(tiny_run), tiny_run)
    values, protocol = RUN_METRICS["reconstruction"].compute(run)
    real, _ = load_heldout(run.config.data, run.config.seed, RECONSTRUCT_IMAGES)
    out = round_to_8bit(run.gen.reconstruct(real))
    assert values["reconstruction_error"] == pytest.approx(float(((out - real) / 2).pow(2).mean()), rel=1e-6)
    assert values["reconstruction_psnr"] == pytest.approx(-10 * math.log10(values["reconstruction_error"]), rel=1e-5)
    assert protocol["reconstruction"]["rounded_to_8bit"] is True
