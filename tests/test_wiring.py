"""Fast checks that each variant wires its loss terms, conditions and metrics as documented.

Each test names the bug it catches: a swapped argument, a dropped or mis-signed term, an ignored label. The losses are
recomputed here from the networks' own outputs (and the pure functions of gankit.losses), on one fixed batch.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from gankit import losses
from gankit.data import Batch, load_dataset
from gankit.metrics.diversity import diversity_ratio, mean_pairwise_distance
from gankit.variants import Context, Request, Variant, build_variant, resolve
from gankit.variants.gan import FAKE

SMALL = ["train.batch_size=16", "model.width=8", "model.g_hidden=[16]", "model.d_hidden=[16]"]


def _setup(preset: str, *overrides: str) -> tuple[Variant, Batch]:
    """A freshly seeded tiny variant of a preset and a fixed batch of 16 of its data."""
    torch.manual_seed(0)
    cfg = resolve(preset, [*SMALL, *overrides])[0]
    data = load_dataset(cfg.data, cfg.seed)
    variant = build_variant(cfg, data.spec())
    return variant, Batch(*data.take(torch.arange(16)))


def _d_phase(variant: Variant, batch: Batch) -> tuple[torch.Tensor, dict, Context]:
    """The D phase's loss and scalars, and the context holding its fakes for the G phase."""
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    return loss, scalars, ctx


def test_d_loss_is_the_game_on_real_then_fake_logits():
    """Catches real and fake logits swapped in GAN.d_loss, and d_real/d_fake/diversity logged from the wrong batch."""
    variant, batch = _setup("ring8-gan")
    loss, scalars, ctx = _d_phase(variant, batch)
    fake = ctx.values[FAKE][0].detach()
    real_logits, fake_logits = variant.D(batch.x), variant.D(fake)
    assert loss.item() == pytest.approx(losses.d_bce(real_logits, fake_logits).item(), rel=1e-6)
    assert scalars["d_real"].item() == pytest.approx(real_logits.sigmoid().mean().item(), rel=1e-6)
    assert scalars["d_fake"].item() == pytest.approx(fake_logits.sigmoid().mean().item(), rel=1e-6)
    expected_diversity = mean_pairwise_distance(fake) / mean_pairwise_distance(batch.x)
    assert scalars["diversity"].item() == pytest.approx(expected_diversity.item(), rel=1e-6)


def test_one_d_step_raises_d_on_reals_and_lowers_it_on_fakes():
    """Catches real and fake logits swapped in GAN.d_loss (D would learn to call fakes real)."""
    variant, batch = _setup("ring8-gan")
    loss, _, ctx = _d_phase(variant, batch)
    fake = ctx.values[FAKE][0].detach()
    with torch.no_grad():
        real_before, fake_before = variant.D(batch.x).mean(), variant.D(fake).mean()
    optimizer = torch.optim.SGD(variant.groups["D"].parameters(), lr=0.1)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert variant.D(batch.x).mean() > real_before and variant.D(fake).mean() < fake_before


def test_one_g_step_raises_d_on_the_fakes():
    """Catches a G loss of the wrong sign (G would learn to look fake)."""
    variant, batch = _setup("ring8-gan")
    _, _, ctx = _d_phase(variant, batch)
    loss, _ = variant.loss("G", batch, ctx)
    z = variant.noise(64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = variant.D(variant.G(z)).mean()
    optimizer = torch.optim.SGD(variant.groups["G"].parameters(), lr=0.1)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert variant.D(variant.G(z)).mean() > before


def test_gradient_penalty_adds_weight_times_penalty_to_the_d_loss():
    """Catches the gradient penalty computed (and logged) but not added to the D loss, or added without its weight."""
    variant, batch = _setup("ring8-gan", "loss.gp_weight=10")
    torch.manual_seed(1)
    with_penalty, scalars = variant.loss("D", batch, Context())
    variant.reg.gp_weight = 0.0
    torch.manual_seed(1)
    without, _ = variant.loss("D", batch, Context())
    assert scalars["gradient_penalty"] > 1e-3
    assert (with_penalty - without).item() == pytest.approx(10 * scalars["gradient_penalty"].item(), rel=1e-5)


def test_lazy_r1_is_reg_every_times_half_gamma_times_the_squared_gradient_norm():
    """Catches a wrong R1 weight or sign, and lazy R1 without its reg_every scaling, in GAN.reg_loss."""
    variant, batch = _setup("ring8-gan", "loss.r1_weight=3", "loss.reg_every=4")
    assert [(p.name, p.every) for p in variant.phases] == [("D", 1), ("D_reg", 4), ("G", 1)]
    loss, scalars = variant.loss("D_reg", batch, Context())
    x = batch.x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(variant.D(x).sum(), x)
    r1 = grad.pow(2).sum(1).mean()
    assert r1 > 1e-4
    assert scalars["r1"].item() == pytest.approx(r1.item(), rel=1e-5)
    assert loss.item() == pytest.approx(4 * 3 / 2 * r1.item(), rel=1e-5)


def test_feature_matching_adds_weight_times_the_squared_distance_of_feature_means():
    """Catches the feature-matching term dropped from (or mis-weighted in) GAN.g_loss."""
    variant, batch = _setup("ring8-gan", "loss.feature_matching=2")
    _, _, ctx = _d_phase(variant, batch)
    fake = ctx.values[FAKE][0]
    with torch.no_grad():
        fm = (variant.D.features(batch.x).mean(0) - variant.D.features(fake).mean(0)).pow(2).sum()
        adversarial = losses.g_non_saturating(variant.D(fake))
    loss, _ = variant.loss("G", batch, ctx)
    assert fm > 1e-4
    assert loss.item() == pytest.approx(adversarial.item() + 2 * fm.item(), rel=1e-5)


def test_projection_d_adds_the_label_embedding_times_the_pooled_features():
    """Catches the projection term of ProjectionD zeroed or dropped: the cGAN D's logit must depend on the label."""
    variant, batch = _setup("digits-cgan")
    other = (batch.y + 1) % 10
    with torch.no_grad():
        pooled = variant.D.net.features(batch.x).flatten(2).sum(2)
        expected = ((variant.D.embed(batch.y) - variant.D.embed(other)) * pooled).sum(1)
        difference = variant.d_forward(batch.x, batch.y) - variant.d_forward(batch.x, other)
    assert expected.abs().min() > 1e-3
    assert torch.allclose(difference, expected, atol=1e-5)


def test_cgan_d_judges_reals_and_fakes_by_the_batch_labels():
    """Catches a cGAN D phase that scores fakes (or reals) without their labels, or by other labels."""
    variant, batch = _setup("digits-cgan")
    loss, _, ctx = _d_phase(variant, batch)
    fake, labels = ctx.values[FAKE]
    assert torch.equal(labels, batch.y)
    with torch.no_grad():
        expected = losses.d_bce(variant.D(batch.x, batch.y), variant.D(fake, batch.y))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cgan_generator_output_depends_on_the_label():
    """Catches a cGAN G that ignores its label."""
    variant, _ = _setup("digits-cgan")
    z = variant.noise(4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ones = variant.generate(Request(4, z=z, labels=torch.full((4,), 1)))
        twos = variant.generate(Request(4, z=z, labels=torch.full((4,), 2)))
    assert (ones - twos).abs().amax(dim=(1, 2, 3)).min() > 1e-4


def test_acgan_both_players_minimise_the_weighted_class_loss():
    """Catches ACGAN.aux_g_loss with a flipped sign (G would hide the class), and a D class term mis-weighted."""
    variant, batch = _setup("digits-acgan", "acgan.aux_weight=2")
    d_loss, _, ctx = _d_phase(variant, batch)
    fake, labels = ctx.values[FAKE]
    assert torch.equal(labels, batch.y)
    with torch.no_grad():
        real_logits, real_aux = variant.D(batch.x)
        fake_logits, fake_aux = variant.D(fake)
        d_expected = losses.d_bce(real_logits, fake_logits) \
            + 2 * (F.cross_entropy(real_aux, batch.y) + F.cross_entropy(fake_aux, batch.y))
        g_expected = losses.g_non_saturating(fake_logits) + 2 * F.cross_entropy(fake_aux, batch.y)
    g_loss, _ = variant.loss("G", batch, ctx)
    assert d_loss.item() == pytest.approx(d_expected.item(), rel=1e-5)
    assert g_loss.item() == pytest.approx(g_expected.item(), rel=1e-5)


def test_infogan_info_loss_is_weighted_cross_entropy_plus_gaussian_nll():
    """Catches InfoGAN.info_loss's continuous NLL without its log σ term (or without its weight)."""
    variant, _ = _setup("digits-infogan", "infogan.categorical=3", "infogan.continuous=2", "infogan.weight=2",
                        "infogan.continuous_weight=0.5")
    category = torch.tensor([0, 2, 1, 2])
    values = torch.tensor([[0.5, -0.5], [0.9, 0.1], [-0.3, -1.0], [0.0, 0.7]])
    cond = torch.cat([F.one_hot(category, 3).float(), values], dim=1)
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.3, 2.0], [0.0, 1.5, 0.0], [-1.0, 0.0, 0.5]])
    mean = torch.tensor([[0.4, -0.2], [0.5, 0.3], [0.0, -0.8], [0.1, 0.2]])
    log_std = torch.tensor([[0.5, 1.0], [-0.5, 0.3], [1.5, 0.2], [0.8, -0.3]])  # inside the clamp, summing to 3.5
    loss, _ = variant.info_loss(torch.cat([logits, mean, log_std], dim=1), cond)
    nll = -Normal(mean, log_std.exp()).log_prob(values).sum(1).mean()
    assert loss.item() == pytest.approx((2 * F.cross_entropy(logits, category) + 0.5 * nll).item(), rel=1e-5)


def test_mean_pairwise_distance_averages_the_distinct_pairs():
    points = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])  # pair distances 3, 4, 5
    assert mean_pairwise_distance(points).item() == pytest.approx(4.0)


def test_diversity_ratio_is_fake_spread_over_real_spread():
    """Catches diversity_ratio inverted (real over fake): ≈ 1 for data-like fakes, → 0 under collapse."""
    real = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    assert diversity_ratio(0.5 * real, real).item() == pytest.approx(0.5, rel=1e-5)
    assert diversity_ratio(real, real).item() == pytest.approx(1.0, rel=1e-5)
    assert diversity_ratio(real[:1].expand(32, -1), real).item() == pytest.approx(0.0, abs=1e-6)


def test_r2_is_reg_every_times_half_gamma_times_the_squared_gradient_norm_on_fakes():
    """Catches the R2 penalty (on G's samples) dropped from, mis-signed in or mis-weighted in GAN.reg_loss."""
    variant, batch = _setup("ring8-gan", "loss.r2_weight=3", "loss.reg_every=2")
    torch.manual_seed(5)
    loss, scalars = variant.loss("D_reg", batch, Context())
    torch.manual_seed(5)
    with torch.no_grad():
        fake = variant.G(variant.noise(len(batch)))
    fake.requires_grad_(True)
    (grad,) = torch.autograd.grad(variant.D(fake).sum(), fake)
    r2 = grad.pow(2).sum(1).mean()
    assert r2 > 1e-4
    assert scalars["r2"].item() == pytest.approx(r2.item(), rel=1e-5)
    assert loss.item() == pytest.approx(2 * 3 / 2 * r2.item(), rel=1e-5)


def test_infogan_d_and_g_losses_add_the_information_and_clustering_terms():
    """Catches InfoGAN's information term dropped from or mis-signed in D's or G's loss, and the clustering term on
    real images dropped or mis-signed in D's."""
    variant, batch = _setup("digits-infogan", "infogan.real_weight=0.5", "infogan.augment_weight=0")
    d_loss, _, ctx = _d_phase(variant, batch)
    fake, fake_cond = ctx.values[FAKE]
    with torch.no_grad():
        real_logits, real_aux = variant.D(batch.x)
        fake_logits, fake_aux = variant.D(fake)
        info, _ = variant.info_loss(fake_aux, fake_cond)
        cluster = losses.cluster_entropy(real_aux[:, :variant.categories], balance=variant.info_real_balance)
        game = variant.game.d(real_logits, fake_logits)
    assert info > 1e-3 and abs(cluster) > 1e-3
    assert d_loss.item() == pytest.approx((game + info + 0.5 * cluster).item(), rel=1e-5)
    g_loss, _ = variant.loss("G", batch, ctx)
    assert g_loss.item() == pytest.approx((variant.game.g(fake_logits) + info).item(), rel=1e-5)


def test_biggan_d_adds_the_label_embedding_times_the_pooled_features():
    """Catches the projection term of BigGAN's D zeroed or dropped: its logit must depend on the label."""
    variant, batch = _setup("shapes32-biggan", "model.width=4", "data.n=64")
    other = (batch.y + 1) % len(variant.class_names)
    with torch.no_grad():
        h = variant.D.features(batch.x)
        expected = ((variant.D.embed(batch.y) - variant.D.embed(other)) * h).sum(1)
        difference = variant.d_forward(batch.x, batch.y) - variant.d_forward(batch.x, other)
    assert expected.abs().min() > 1e-4
    assert torch.allclose(difference, expected, atol=1e-5, rtol=1e-4)


def test_concat_cgan_d_reads_the_label():
    """Catches cgan.cond=concat's D with its one-hot label channels zeroed: its logit must depend on the label."""
    variant, batch = _setup("digits-cgan", "cgan.cond=concat")
    other = (batch.y + 1) % 10
    with torch.no_grad():
        difference = variant.d_forward(batch.x, batch.y) - variant.d_forward(batch.x, other)
    assert difference.abs().min() > 1e-5


def _d_inputs(variant: Variant, monkeypatch) -> list[torch.Tensor]:
    """Record every input D is given (after the critic's augmentation and noise)."""
    seen = []
    forward = variant.d_forward

    def recording(x, cond):
        seen.append(x.detach())
        return forward(x, cond)

    monkeypatch.setattr(variant, "d_forward", recording)
    return seen


def test_instance_noise_reaches_reals_and_fakes_in_both_steps_and_anneals(monkeypatch):
    """Catches instance noise applied to reals or fakes only, missing from G's step, never applied, or not annealed
    (std train.instance_noise · (1 − progress))."""
    variant, _ = _setup("ring8-gan", "train.instance_noise=1.0")
    data = load_dataset(resolve("ring8-gan", SMALL)[0].data, 0)
    batch = Batch(*data.take(torch.arange(1024)))
    seen = _d_inputs(variant, monkeypatch)
    ctx = Context(progress=0.2)
    variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0].detach()
    variant.loss("G", batch, ctx)
    real_in, fake_in, fake_in_g = seen
    for noisy, clean in ((real_in, batch.x), (fake_in, fake), (fake_in_g, fake)):
        assert (noisy - clean).std().item() == pytest.approx(0.8, abs=0.06)


def test_diffaugment_reaches_reals_and_fakes_in_both_steps(monkeypatch):
    """Catches DiffAugment applied to reals or fakes only, or missing from G's step (D would learn the
    augmentation's look as 'real', and G would be judged unaugmented)."""
    variant, batch = _setup("digits-dcgan", "train.diffaug=color")
    seen = _d_inputs(variant, monkeypatch)
    ctx = Context()
    variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0].detach()
    variant.loss("G", batch, ctx)
    real_in, fake_in, fake_in_g = seen
    for augmented, plain in ((real_in, batch.x), (fake_in, fake), (fake_in_g, fake)):
        assert (augmented - plain).abs().flatten(1).amax(1).min() > 1e-3  # every image changed


def test_label_smoothing_reaches_the_d_loss():
    """Catches loss.label_smoothing accepted but not used by GAN.d_loss."""
    variant, batch = _setup("ring8-gan", "loss.label_smoothing=0.2")
    loss, _, ctx = _d_phase(variant, batch)
    fake = ctx.values[FAKE][0].detach()
    with torch.no_grad():
        expected = losses.d_bce(variant.D(batch.x), variant.D(fake), smoothing=0.2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() != pytest.approx(losses.d_bce(variant.D(batch.x), variant.D(fake)).item(), rel=1e-3)
