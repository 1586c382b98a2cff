"""GANomaly: G's three terms and D's game recomputed by hand, the latent-distance score, and scoring from the
exported model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import variant_and_batch
from gankit import anomaly, losses
from gankit.data import load_dataset
from gankit.train import load
from gankit.variants import Context, resolve

SMALL = ["model.width=8", "model.z_dim=8", "train.batch_size=16"]


def setup(*overrides: str):
    return variant_and_batch("digits-ganomaly", *SMALL, *overrides)


def test_g_loss_weighs_the_feature_image_and_latent_distances():
    """Catches a dropped or unweighted term, or the image distance taken against the wrong image."""
    variant, batch = setup("ganomaly.w_adv=2", "ganomaly.w_con=7", "ganomaly.w_enc=3")
    loss, scalars = variant.loss("G", batch, Context())
    z = variant.GE(batch.x)
    x_hat = variant.GD(z)
    z_hat = variant.E(x_hat)
    adversarial = (variant.D.features(batch.x) - variant.D.features(x_hat)).pow(2).mean()
    expected = 2 * adversarial + 7 * F.l1_loss(x_hat, batch.x) + 3 * (z - z_hat).pow(2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["g_enc"].item() > 0 and scalars["g_con"].item() > 0


def test_d_loss_is_the_game_on_reals_against_redraws_and_a_step_widens_the_margin():
    """Catches real and redrawn images swapped in D's loss."""
    variant, batch = setup()
    loss, _ = variant.loss("D", batch, Context())
    with torch.no_grad():
        x_hat = variant.GD(variant.GE(batch.x))
    real, fake = variant.D(batch.x), variant.D(x_hat)
    assert loss.item() == pytest.approx(losses.d_bce(real, fake).item(), rel=1e-5)
    loss.backward()
    torch.optim.SGD(variant.groups["D"].parameters(), lr=0.05).step()
    with torch.no_grad():
        assert (variant.D(batch.x) - variant.D(x_hat)).mean() > (real - fake).mean() + 0.1


def test_g_steps_bring_the_redraw_closer():
    variant, batch = setup()
    opt = torch.optim.Adam(variant.groups["G"].parameters(), lr=2e-3)

    def distance() -> float:
        with torch.no_grad():
            return float(F.l1_loss(variant.GD(variant.GE(batch.x)), batch.x))

    before = distance()
    for _ in range(15):
        opt.zero_grad()
        variant.loss("G", batch, Context())[0].backward()
        opt.step()
    assert distance() < 0.8 * before


def test_the_score_is_the_latent_distance_and_gankit_score_uses_it(train_tiny):
    run = train_tiny("digits-ganomaly", *SMALL, "train.steps=3", "train.sample_every=0", "train.checkpoint_every=0")
    gen = load(run)  # the exported model: G_E, G_D and E
    x = load_dataset(resolve("digits-ganomaly")[0].data).take(torch.arange(5))[0]
    with torch.no_grad():
        z = gen.variant.GE(x)
        expected = (z - gen.variant.E(gen.variant.GD(z))).pow(2).mean(1)
    scores = anomaly.anomaly_scores(gen, x)
    assert torch.allclose(scores.score, expected, atol=1e-7) and scores.protocol["latent"] == "the model's own score"
    assert torch.allclose(gen.reconstruct(x), gen.variant.GD(z).detach(), atol=1e-6)
