"""CycleGAN: outline and stripes pairs, the residual generator, the image pool, the loss wiring and both directions."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import train_until_interrupted
from gankit import losses
from gankit.data import load_dataset
from gankit.data.pairs import STRIPES_AMPLITUDE
from gankit.data.shapes import render, specs_for
from gankit.nets.translator import ResNetGenerator, UNetGenerator
from gankit.variants import Context, build_variant, resolve
from gankit.variants.cyclegan import FAKES, ImagePool

TINY = ["data.n=32", "data.resolution=16", "data.pair=outline", "cyclegan.width=8", "cyclegan.blocks=1",
        "train.batch_size=4", "cyclegan.d_layers=1", "loss.name=least_squares"]  # 16 px: outlines, not the stripes


@pytest.fixture
def setup(pair_setup):
    return lambda *overrides: pair_setup("shapes-cyclegan", *TINY, *overrides)


def test_outline_domain_draws_the_same_objects_as_strokes_and_unpaired_b_comes_from_other_objects():
    paired = load_dataset(resolve("shapes-cyclegan", [*TINY, "data.paired=true"])[0].data, 0)
    specs = specs_for(32, 0)
    assert torch.equal(paired.b, render(specs, 16, outline=0.3))
    filled, outlined = paired.x.float().mean(), paired.b.float().mean()
    assert not torch.equal(paired.x, paired.b) and filled != outlined
    unpaired = load_dataset(resolve("shapes-cyclegan", TINY)[0].data, 0)
    assert torch.equal(unpaired.x, paired.x) and torch.equal(unpaired.b, render(specs_for(32, 1), 16, outline=0.3))


def test_stripes_domain_changes_the_background_and_leaves_the_objects():
    """B under `data.pair=stripes` is A with diagonal stripes on the background: pixels deep inside an object are
    the same, the background differs by the stripe pattern (catches stripes drawn over the object, or none)."""
    data = load_dataset(resolve("shapes-cyclegan", [*TINY, "data.pair=stripes", "data.paired=true",
                                                    "data.resolution=32", "data.shapes=[circle,square]"])[0].data, 0)
    specs = specs_for(32, 0, ["circle", "square"])
    assert torch.equal(data.b, render(specs, 32, stripes=STRIPES_AMPLITUDE))
    centre = (specs.center * 32).long().clamp(0, 31)  # (x, y) pixel under each object's centre: always covered
    rows = torch.arange(32)
    a, b = data.x.float(), data.b.float()
    inside = (a - b)[rows, :, centre[:, 1], centre[:, 0]].abs()
    assert inside.max() <= 1  # the object's colour, up to float rounding in the blend
    corner = (b - a)[:, :, :3, :3].abs().mean()  # objects never reach the corners (size ≤ 0.42, centred inside)
    assert corner > 0.03 * 255  # |0.1·sin| over the pixel grid averages 0.05, less where the background clips


def test_stripes_below_four_pixels_a_period_are_refused(cli):
    code, _, err = cli("train", "shapes-cyclegan", "data.pair=stripes", "data.resolution=16", "--out", "unused")
    assert code == 2 and "stripes" in err and "data.resolution=32" in err and "Traceback" not in err


def test_the_preset_as_shipped_trains_on_unpaired_stripes(pair_setup):
    """The preset's own data and nets (not TINY's): B is striped and drawn from other objects, and a G step runs."""
    variant, batch = pair_setup("shapes-cyclegan", "data.n=8", "cyclegan.width=8")
    data = load_dataset(resolve("shapes-cyclegan", ["data.n=8"])[0].data, 0)
    assert data.transform == "stripes" and not data.paired and data.b.shape == (8, 3, 32, 32)
    assert torch.equal(data.b, render(specs_for(8, 1), 32, stripes=STRIPES_AMPLITUDE))
    loss, scalars = variant.loss("G", batch, Context())
    assert loss.isfinite() and scalars["cycle"] > 0


def test_the_pool_returns_the_batch_until_full_then_swaps_about_half_for_older_fakes():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.filled) == 4
    second = 10 + first
    out = pool.query(second)
    old = [i for i in range(4) if out[i, 0, 0, 0] < 10]
    assert 0 < len(old) < 4  # some came from the pool, some are this batch's
    assert set(out[old, 0, 0, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert ImagePool(0, (1, 2, 2)).query(second) is second


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_g_loss_is_both_adversarial_terms_plus_cycle_and_identity(setup, generator):
    """Catches a dropped direction, the cycle or identity term dropped or mis-weighted, and fakes scored by the wrong
    domain's D, with either generator net."""
    variant, batch = setup("cyclegan.cycle=3", "cyclegan.identity=0.5", f"cyclegan.generator={generator}")
    kind = ResNetGenerator if generator == "resnet" else UNetGenerator
    assert isinstance(variant.G_ab, kind) and isinstance(variant.G_ba, kind) and variant.G_ab is not variant.G_ba
    a, b = batch.x, batch.b
    loss, scalars = variant.loss("G", batch, Context())
    fake_b, fake_a = variant.G_ab(a), variant.G_ba(b)
    adversarial = losses.g_least_squares(variant.D_b(fake_b).flatten()) + \
        losses.g_least_squares(variant.D_a(fake_a).flatten())
    cycle = F.l1_loss(variant.G_ba(fake_b), a) + F.l1_loss(variant.G_ab(fake_a), b)
    identity = F.l1_loss(variant.G_ab(b), b) + F.l1_loss(variant.G_ba(a), a)
    assert loss.item() == pytest.approx((adversarial + 3 * cycle + 1.5 * identity).item(), rel=1e-5)
    assert scalars["cycle"].item() == pytest.approx(cycle.item(), rel=1e-5)


def test_cycle_noise_enters_the_round_trips_only(setup):
    """With `cyclegan.cycle_noise` each translation is perturbed before it is translated back, and nowhere else:
    catches the noise left out, added to the adversarial term, or the same draw used for both directions."""
    variant, batch = setup("cyclegan.cycle=1", "cyclegan.identity=0", "cyclegan.cycle_noise=0.3")
    a, b = batch.x, batch.b
    torch.manual_seed(5)
    loss, scalars = variant.loss("G", batch, Context())
    torch.manual_seed(5)
    with torch.no_grad():
        fake_b, fake_a = variant.G_ab(a), variant.G_ba(b)
        noise_b, noise_a = 0.3 * torch.randn_like(fake_b), 0.3 * torch.randn_like(fake_a)
        cycle = F.l1_loss(variant.G_ba(fake_b + noise_b), a) + F.l1_loss(variant.G_ab(fake_a + noise_a), b)
        adversarial = losses.g_least_squares(variant.D_b(fake_b).flatten()) + \
            losses.g_least_squares(variant.D_a(fake_a).flatten())
        clean = F.l1_loss(variant.G_ba(fake_b), a) + F.l1_loss(variant.G_ab(fake_a), b)
    assert not torch.equal(noise_a, noise_b) and abs(cycle.item() - clean.item()) > 1e-3
    assert scalars["cycle"].item() == pytest.approx(cycle.item(), rel=1e-5)
    assert loss.item() == pytest.approx((adversarial + cycle).item(), rel=1e-5)


def test_d_loss_is_half_of_each_domains_game_on_its_own_reals_and_pooled_fakes(setup):
    """Catches real and fake swapped, or D_a judging domain B."""
    variant, batch = setup("cyclegan.pool=0")
    ctx = Context()
    variant.loss("G", batch, ctx)
    fake_a, fake_b = ctx.values[FAKES]
    loss, _ = variant.loss("D", batch, ctx)
    game = losses.d_least_squares
    expected = 0.5 * (game(variant.D_a(batch.x).flatten(), variant.D_a(fake_a).flatten())
                      + game(variant.D_b(batch.b).flatten(), variant.D_b(fake_b).flatten()))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_pool_is_in_the_checkpointed_state_and_not_in_the_exported_generator(setup):
    variant, _ = setup()
    keys = variant.state_dict().keys()
    assert "pool_a.images" in keys and "pool_b.filled" in keys
    assert all(k.startswith(("G_ab.", "G_ba.")) for k in variant.generator_state())


def test_direction_picks_the_generator_and_one_way_models_refuse_it(setup):
    from gankit.variants import Request

    variant, batch = setup()
    variant.eval()
    with torch.no_grad():
        ab = variant.generate(Request(4, inputs=batch.x))
        ba = variant.generate(Request(4, inputs=batch.x, direction="b2a"))
        assert torch.equal(ab, variant.G_ab(batch.x)) and torch.equal(ba, variant.G_ba(batch.x))
    with pytest.raises(ValueError, match="unknown direction"):
        variant.generate(Request(4, inputs=batch.x, direction="sideways"))
    cfg = resolve("shapes-pix2pix", ["data.n=8", "data.resolution=16", "pix2pix.width=8"])[0]
    one_way = build_variant(cfg, load_dataset(cfg.data, 0).spec())
    with pytest.raises(ValueError, match="one way only"):
        one_way.generate(Request(2, inputs=batch.x[:2], direction="b2a"))


@pytest.fixture(scope="module")
def tiny_cycle(train_tiny):
    return train_tiny("shapes-cyclegan", *TINY, "train.steps=3", "train.sample_every=3", "train.checkpoint_every=0",
                      "train.log_every=1")


def test_eval_reports_both_directions_and_the_round_trips(tiny_cycle, cli):
    code, out, _ = cli("eval", str(tiny_cycle), "--json")
    report = json.loads(out)
    assert code == 0
    for key in ("psnr_to_truth", "psnr_to_truth_b2a", "cycle_l1_a", "cycle_l1_b", "label_preservation_b2a",
                "baseline_identity_psnr", "baseline_histogram_psnr"):
        assert key in report


def test_both_directions_and_round_trips_are_measured_on_rounded_outputs_against_the_truth(tiny_cycle):
    """Catches B -> A measured against B, a round trip through the same direction twice, or a second pass left
    unrounded (the protocol says outputs are measured as their PNGs hold them)."""
    import gankit
    from gankit.data import load_truth_pairs
    from gankit.metrics.translation import l1, psnr
    from gankit.report.compare import round_to_8bit
    from gankit.report.evaluate import RunEval, translation

    run = RunEval(gankit.load(tiny_cycle), tiny_cycle)
    values, protocol = translation(run)
    truth = load_truth_pairs(run.config.data, run.config.seed)
    rows = torch.arange(len(truth))
    a, b = truth.take(rows)[0], truth.take_b(rows)
    gen = run.gen
    out, back = round_to_8bit(gen.sample(inputs=a)), round_to_8bit(gen.sample(inputs=b, direction="b2a"))
    assert values["psnr_to_truth_b2a"] == pytest.approx(psnr(back, a), rel=1e-9)
    assert values["cycle_l1_a"] == pytest.approx(l1(round_to_8bit(gen.sample(inputs=out, direction="b2a")), a),
                                                 rel=1e-9)
    assert values["cycle_l1_b"] == pytest.approx(l1(round_to_8bit(gen.sample(inputs=back, direction="a2b")), b),
                                                 rel=1e-9)
    assert protocol["rounded_to_8bit"] is True


def test_translate_direction_flag(tiny_cycle, tmp_path, cli):
    import numpy as np

    np.savez(tmp_path / "b.npz", samples=np.zeros((2, 3, 16, 16), np.float32))
    code, _, err = cli("translate", str(tiny_cycle), str(tmp_path / "b.npz"), "--out", str(tmp_path / "a.npz"),
                       "--direction", "b2a")
    assert code == 0, err
    code, _, err = cli("translate", str(tiny_cycle), str(tmp_path / "b.npz"), "--out", str(tmp_path / "x.npz"),
                       "--direction", "up")
    assert code == 2 and "a2b or b2a" in err


def test_a_resumed_run_is_bit_identical_pools_cursors_and_schedule_included(tmp_path):
    """Catches the fake pools or domain B's cursor left out of checkpoints, and the delayed decay restarting: a run
    stopped at step 4 (as Ctrl-C would) and resumed ends where an uninterrupted one does."""
    from safetensors.torch import load_file

    from gankit.train import Trainer

    cfg = resolve("shapes-cyclegan", [*TINY, "cyclegan.pool=3", "train.steps=8", "train.log_every=2",
                                      "train.sample_every=0", "train.checkpoint_every=0"])[0]
    Trainer(cfg, tmp_path / "A", progress=False).fit()
    assert train_until_interrupted(cfg, tmp_path / "B", 4) == 4
    resumed = Trainer(cfg, tmp_path / "B", resume=True, progress=False)
    assert int(resumed.variant.pool_a.filled) == 3 and resumed.sampler.other.cursor == 32  # 4 steps × 2 phases × 4
    resumed.fit()
    a, b = (load_file(str(tmp_path / r / "model" / "model.safetensors")) for r in "AB")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("overrides, message", [
    (["data.pair=outline", "data.resolution=16", "cyclegan.d_layers=3"], "at least 32 px, got 16"),
    (["data.pair=outline", "data.resolution=24", "cyclegan.generator=resnet", "cyclegan.d_layers=null"],
     "power-of-two resolution"),
])
def test_nets_that_do_not_fit_the_images_are_refused_with_one_line(cli, tmp_path, overrides, message):
    """cyclegan.d_layers=3 needs 32-px images, and the default D depth a power-of-two side: the user gets the limit
    and the keys to change, exit 2, and nothing written."""
    out = tmp_path / "run"
    code, _, err = cli("train", "shapes-cyclegan", "data.n=16", *overrides, "--out", str(out), "--no-progress")
    assert code == 2 and message in err and "cyclegan.d_layers" in err and "data.resolution" in err
    assert "Traceback" not in err and not out.exists()


def test_b2a_is_measured_against_the_true_a(tiny_cycle):
    import gankit
    from gankit.data import load_truth_pairs
    from gankit.metrics.translation import psnr
    from gankit.report.compare import round_to_8bit
    from gankit.report.evaluate import RunEval, translation

    run = RunEval(gankit.load(tiny_cycle), tiny_cycle)
    values, _ = translation(run)
    truth = load_truth_pairs(run.config.data, run.config.seed)
    rows = torch.arange(len(truth))
    a, b = truth.take(rows)[0], truth.take_b(rows)
    back = round_to_8bit(run.gen.sample(inputs=b, direction="b2a"))
    assert values["psnr_to_truth_b2a"] == pytest.approx(psnr(back, a), rel=1e-9)
