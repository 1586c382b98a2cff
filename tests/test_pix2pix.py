"""Image pairs, the image-to-image nets, pix2pix's wiring, the translation metrics and `gankit translate`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit import losses
from gankit.data import PairSampler, load_dataset, load_truth_pairs
from gankit.data.pairs import PALETTE, palette_swap
from gankit.data.shapes import COLORS, render, specs_for
from gankit.errors import UserError
from gankit.metrics.translation import histogram_match, l1, psnr
from gankit.nets.translator import PatchDiscriminator, UNetGenerator, patch_layers, receptive_field
from gankit.variants import Context, build_variant, resolve
from gankit.variants.paired import FAKE

TINY = ["data.n=64", "data.resolution=16", "pix2pix.width=8", "train.batch_size=8"]


def _cfg(*overrides: str):
    return resolve("shapes-pix2pix", [*TINY, *overrides])[0]


# ----------------------------------------------------------------------------------------------- data


def test_palette_pairs_differ_only_in_the_objects_colour():
    """B is A's objects re-rendered with each colour replaced by its partner: same shapes, same backgrounds."""
    data = load_dataset(_cfg().data, 0)
    specs = specs_for(64, 0, difficulty=None)
    assert torch.equal(data.x, render(specs, 16))
    assert torch.equal(data.b, render(palette_swap(specs), 16))
    partner = [COLORS.index(PALETTE[c]) for c in COLORS]
    assert torch.equal(palette_swap(specs).color, torch.tensor(partner)[specs.color])
    changed = (data.x != data.b).flatten(1).any(1)
    assert torch.equal(changed, specs.color != COLORS.index("white"))  # white stays white, every other colour moves


def test_unpaired_shapes_draw_b_from_other_objects_and_the_truth_from_objects_never_trained_on():
    cfg = _cfg("data.paired=false")
    data, paired = load_dataset(cfg.data, 0), load_dataset(_cfg().data, 0)
    assert torch.equal(data.x, paired.x) and not torch.equal(data.b, paired.b)
    truth = load_truth_pairs(cfg.data, 0)
    assert truth.paired and len(truth) == 1000 and "not trained on" in truth.info["heldout"]
    assert not any(torch.equal(truth.x[0], x) for x in data.x)


def test_truth_pairs_are_other_objects_even_when_the_counts_match():
    cfg = _cfg("data.n=1000")  # as many objects as the truth draws
    data, truth = load_dataset(cfg.data, 0), load_truth_pairs(cfg.data, 0)
    assert len(truth) == len(data) and not (truth.x == data.x).flatten(1).all(1).any()


def test_unpaired_b_comes_from_its_own_shuffled_stream():
    sampler = PairSampler(load_dataset(_cfg("data.paired=false").data, 0), 8, 0)
    assert not torch.equal(sampler.indices(), sampler.other.indices())


@pytest.mark.parametrize("transform", ["invert", "thicken", "night"])
def test_pixel_transforms_pair_digits_row_for_row_and_split_them_when_unpaired(transform):
    paired = load_dataset(resolve("digits-dcgan", [f"data.pair={transform}"])[0].data, 0)
    assert paired.kind == "pairs" and paired.x.shape == paired.b.shape
    if transform == "invert":
        assert torch.allclose(paired.b, -paired.x)
    elif transform == "thicken":
        assert (paired.b >= paired.x).all() and (paired.b > paired.x).any()
    else:
        assert paired.b.mean() < paired.x.mean()
    unpaired = load_dataset(resolve("digits-dcgan", [f"data.pair={transform}", "data.paired=false"])[0].data, 0)
    assert len(unpaired) == (len(paired) + 1) // 2 and len(unpaired.b) == len(paired) // 2
    assert torch.equal(unpaired.x, paired.x[0::2]) and torch.equal(unpaired.b, paired.b[1::2])


def test_a_noise_model_on_two_domains_is_refused(cli):
    code, _, err = cli("train", "digits-dcgan", "data.pair=invert", "--out", "unused")
    assert code == 2 and "image-to-image" in err


def test_palette_on_images_without_objects_is_refused_with_a_hint(cli):
    code, _, err = cli("train", "digits-dcgan", "data.pair=palette", "--out", "unused")
    assert code == 2 and "palette" in err and "data.name=shapes" in err


def test_pair_sampler_keeps_rows_together_when_paired_and_resumes_both_cursors():
    data = load_dataset(_cfg().data, 0)
    batch = PairSampler(data, 8, 0).next()
    rows = [int(((data.take(torch.arange(64))[0] - x).abs().flatten(1).sum(1)).argmin()) for x in batch.x]
    assert torch.equal(batch.b, data.take_b(torch.tensor(rows)))
    unpaired = load_dataset(_cfg("data.paired=false").data, 0)
    sampler = PairSampler(unpaired, 8, 0)
    sampler.next()
    state = sampler.state_dict()
    after = sampler.next()
    again = PairSampler(unpaired, 8, 0)
    again.load_state_dict(state)
    resumed = again.next()
    assert state == {"cursor": 8, "cursor_b": 8}
    assert torch.equal(after.x, resumed.x) and torch.equal(after.b, resumed.b)


# ----------------------------------------------------------------------------------------------- nets


def test_unet_keeps_the_size_and_its_skips_carry_the_input():
    torch.manual_seed(0)
    G = UNetGenerator(3, 3, 32, width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    assert G(x).shape == (2, 3, 32, 32) and G(x).abs().max() <= 1
    x.requires_grad_(True)
    G(x)[0, :, 5, 5].sum().backward()  # one output pixel depends on its own neighbourhood through the skips
    assert x.grad[0].abs().sum() > 0 and x.grad[1].abs().sum() == 0  # and on its own image only (eval-mode BN)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_patch_discriminator_sees_exactly_its_receptive_field(layers):
    """The documented receptive field (16, 34, 70 px) is what one output logit actually depends on."""
    D = PatchDiscriminator(3, 128, width=4, layers=layers).eval()
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    out = D(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0].abs().sum((0, 2)).nonzero()
    assert rows.max() - rows.min() + 1 == receptive_field(layers)
    assert [receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]
    assert patch_layers(256) == 3 and patch_layers(64) == 1 and patch_layers(32) == 1


# ----------------------------------------------------------------------------------------------- wiring


@pytest.fixture
def setup(pair_setup):
    return lambda *overrides: pair_setup("shapes-pix2pix", *TINY, *overrides, batch_size=8)


def test_d_loss_is_half_the_game_on_real_pairs_then_fake_pairs(setup):
    """Catches real and fake pairs swapped, the input left out of D's pairs, the paper's halving dropped, or fakes
    drawn from anything but G(A)."""
    variant, batch = setup()
    ctx = Context()
    torch.manual_seed(3)  # G's dropout is its noise
    loss, scalars = variant.loss("D", batch, ctx)
    _, fake = ctx.values[FAKE]
    torch.manual_seed(3)
    assert torch.allclose(fake, variant.G(batch.x))
    real_logits = variant.D(torch.cat([batch.x, batch.b], 1)).flatten()
    fake_logits = variant.D(torch.cat([batch.x, fake.detach()], 1)).flatten()
    assert loss.item() == pytest.approx(0.5 * losses.d_bce(real_logits, fake_logits).item(), rel=1e-5)
    assert scalars["d_real"].item() == pytest.approx(real_logits.sigmoid().mean().item(), rel=1e-5)
    assert scalars["d_fake"].item() == pytest.approx(fake_logits.sigmoid().mean().item(), rel=1e-5)


def test_g_loss_is_the_adversarial_term_plus_lambda_l1_on_the_d_steps_pairs(setup):
    """Catches the L1 term dropped, its sign flipped or its weight lost, and G scored on another batch's targets
    (the trainer draws a fresh batch per phase; G must use the pairs its fakes came from)."""
    variant, batch = setup()
    ctx = Context()
    variant.loss("D", batch, ctx)
    _, fake = ctx.values[FAKE]
    other = replace(batch, b=batch.b.flip(0), x=batch.x.flip(0))
    loss, scalars = variant.loss("G", other, ctx)
    adversarial = losses.g_non_saturating(variant.D(torch.cat([batch.x, fake], 1)).flatten())
    expected = adversarial + 100.0 * F.l1_loss(fake, batch.b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["l1"].item() == pytest.approx(F.l1_loss(fake, batch.b).item(), rel=1e-5)


def test_a_g_step_moves_the_output_towards_the_true_b(setup):
    variant, batch = setup("pix2pix.dropout=0")
    variant.G.eval()
    with torch.no_grad():
        before = F.l1_loss(variant.G(batch.x), batch.b)
    variant.G.train()
    loss, _ = variant.loss("G", batch, Context())
    optimizer = torch.optim.Adam(variant.groups["G"].parameters(), lr=1e-3)
    loss.backward()
    optimizer.step()
    variant.G.eval()
    with torch.no_grad():
        assert F.l1_loss(variant.G(batch.x), batch.b) < before


def test_d_judges_the_pair_so_the_input_changes_its_verdict(setup):
    """Catches D built on B alone (the conditioning path zeroed): the same B with another A must score otherwise."""
    variant, batch = setup()
    variant.eval()
    with torch.no_grad():
        one = variant.critic(batch.x, batch.b)
        other = variant.critic(batch.x.flip(0), batch.b)
    assert not torch.allclose(one, other)


def test_pix2pix_refuses_unpaired_data_and_noise_requests(cli):
    with pytest.raises(Exception, match="paired"):
        cfg = _cfg("data.paired=false")
        build_variant(cfg, load_dataset(cfg.data, 0).spec())
    code, _, err = cli("train", "digits-dcgan", "variant=pix2pix", "--out", "unused")
    assert code == 2 and "data.pair" in err


# ----------------------------------------------------------------------------------------------- metrics and CLI


def test_psnr_l1_and_histogram_matching_by_hand():
    x = torch.zeros(2, 3, 4, 4)
    y = x + 0.2  # 0.1 in [0, 1] units everywhere
    assert psnr(x, y) == pytest.approx(20.0) and l1(x, y) == pytest.approx(0.1)
    assert psnr(x, x) == 100.0
    ref = torch.rand(3, 3, 4, 4) * 2 - 1
    assert torch.allclose(histogram_match(ref * 0.5 - 0.3, ref), ref)  # a monotone map of ref is undone exactly


@pytest.fixture(scope="module")
def tiny_run(train_tiny):
    return train_tiny("shapes-pix2pix", *TINY, "train.steps=4", "train.sample_every=2", "train.checkpoint_every=0",
                      "train.log_every=2")


def test_eval_reports_translation_metrics_against_held_out_truth(tiny_run, cli):
    code, out, _ = cli("eval", str(tiny_run), "--json")
    report = json.loads(out)
    assert code == 0
    for key in ("psnr_to_truth", "l1_to_truth", "baseline_identity_psnr", "baseline_histogram_psnr", "fd_to_truth",
                "label_preservation", "label_preservation_truth"):
        assert key in report
    assert "fid" not in report  # G(A) is not compared with domain A's images
    protocol = report["protocol"]["translation"]
    assert protocol["pairs"] == 1000 and "not trained on" in protocol["heldout"]
    assert (tiny_run / "samples" / "step-4.png").is_file()
    assert Image.open(tiny_run / "samples" / "step-4.png").size[0] > Image.open(tiny_run / "samples" / "step-4.png").size[1]


def test_translate_writes_one_png_per_input_named_as_the_input(tiny_run, tmp_path, cli):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.jpg"):
        Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(src / name)
    code, _, err = cli("translate", str(tiny_run), str(src), "--out", str(tmp_path / "out") + "/")
    assert code == 0, err
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a.png", "sub/b.png"]
    with Image.open(tmp_path / "out" / "sub" / "b.png") as img:
        assert img.size == (16, 16) and img.text["gankit:generated"] == "true" and img.text["gankit:source"] == "sub/b.jpg"
    code, _, _ = cli("translate", str(tiny_run), str(src), "--out", str(tmp_path / "grid.png"), "--grid")
    assert code == 0 and Image.open(tmp_path / "grid.png").size[0] > 2 * Image.open(tmp_path / "grid.png").size[1]
    # the grid shows the real inputs too, and says so; a translated image alone is all generated
    from gankit.io import GENERATED_NOTE, MIXED_NOTE, read_provenance

    grid, alone = read_provenance(tmp_path / "grid.png"), read_provenance(tmp_path / "out" / "a.png")
    assert grid["Comment"] == MIXED_NOTE and "inputs" in grid["gankit:real"]
    assert alone["Comment"] == GENERATED_NOTE and "gankit:real" not in alone


def test_inputs_differing_only_in_suffix_keep_their_own_names_as_the_source(tiny_run, tmp_path, cli):
    src = tmp_path / "in"
    for name, value in (("a.png", 40), ("a.jpg", 200)):
        _write(src / name, value)
    code, _, err = cli("translate", str(tiny_run), str(src), "--out", str(tmp_path / "out") + "/")
    assert code == 0, err
    for name in ("a.png", "a.jpg"):
        with Image.open(tmp_path / "out" / f"{name}.png") as img:
            assert img.text["gankit:source"] == name


@pytest.mark.parametrize("out", ["in/", "in/sub/", "in/grid.png", "in/a.png"])
def test_an_out_among_the_inputs_is_refused_before_any_work(tiny_run, tmp_path, cli, out):
    """Writing into the input folder would replace real images by generated ones (or be read as inputs next time)."""
    src = tmp_path / "in"
    _write(src / "a.png", 90)
    _write(src / "b.jpg", 30)
    before = {p: p.read_bytes() for p in src.rglob("*")}
    args = ["--grid"] if out.endswith("grid.png") else []
    code, _, err = cli("translate", str(tiny_run), str(src), "--out", str(tmp_path / out), *args)
    assert code == 2 and "lies in the input folder" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in src.rglob("*")} == before
    code, _, err = cli("translate", str(tiny_run), str(src / "a.png"), "--out", str(src / "a.png"))
    assert code == 2 and "is the input file itself" in err and (src / "a.png").read_bytes() == before[src / "a.png"]


def test_translate_bad_inputs_exit_2_with_one_line(tiny_run, tmp_path, cli, ring_cfg):
    from gankit.train import Trainer

    (tmp_path / "empty").mkdir()
    code, _, err = cli("translate", str(tiny_run), str(tmp_path / "empty"), "--out", str(tmp_path / "o") + "/")
    assert code == 2 and "holds no image files" in err and not (tmp_path / "o").exists()
    np.savez(tmp_path / "grey.npz", samples=np.zeros((2, 1, 16, 16), np.float32))
    code, _, err = cli("translate", str(tiny_run), str(tmp_path / "grey.npz"), "--out", str(tmp_path / "o.npz"))
    assert code == 2 and "grey.npz: its array of shape (2, 1, 16, 16) holds no 3×16×16 images" in err
    assert not (tmp_path / "o.npz").exists()
    np.savez(tmp_path / "bytes.npz", samples=np.full((2, 3, 16, 16), 200, np.float32))  # 8-bit pixels, not [-1, 1]
    code, _, err = cli("translate", str(tiny_run), str(tmp_path / "bytes.npz"), "--out", str(tmp_path / "o.npz"))
    assert code == 2 and "bytes.npz: its images range over [200, 200]" in err and "127.5" in err
    assert not (tmp_path / "o.npz").exists()
    code, _, err = cli("interpolate", str(tiny_run), "--out", str(tmp_path / "walk.png"))
    assert code == 2 and "no latents to walk between" in err and not (tmp_path / "walk.png").exists()
    np.savez(tmp_path / "flat.npz", foo=np.zeros((3, 4), np.float32))  # no images at all: the file is named
    code, _, err = cli("translate", str(tiny_run), str(tmp_path / "flat.npz"), "--out", str(tmp_path / "o.npz"))
    assert code == 2 and "flat.npz: its array of shape (3, 4)" in err and not (tmp_path / "o.npz").exists()
    Trainer(ring_cfg("train.steps=2"), tmp_path / "ring", progress=False).fit()
    code, _, err = cli("translate", str(tmp_path / "ring"), str(tmp_path / "grey.npz"), "--out", str(tmp_path / "o.npz"))
    assert code == 2 and "nothing to translate" in err
    code, _, err = cli("sample", str(tiny_run), "-n", "4", "--out", str(tmp_path / "s.png"))
    assert code == 2 and "translates images" in err


# ----------------------------------------------------------------------------------------------- your own folders


def _write(path, value: int, size=(20, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def _folder_cfg(root, *overrides: str):
    return resolve("shapes-pix2pix", ["data.name=folder", "data.pair=folders", f"data.path={root}",
                                      "data.resolution=16", *overrides])[0]


def test_paired_folders_match_files_by_name_whatever_the_suffix(tmp_path):
    for i, name in enumerate(["x", "sub/y"]):
        _write(tmp_path / "A" / f"{name}.png", 10 * i)
        _write(tmp_path / "B" / f"{name}.jpg", 200 - 10 * i)
    data = load_dataset(_folder_cfg(tmp_path).data, 0)
    assert data.kind == "pairs" and data.paired and len(data) == 2
    assert data.x[:, 0, 0, 0].tolist() == [10, 0] and data.b[:, 0, 0, 0].tolist() == [190, 200]  # "sub/y" < "x"
    truth = load_truth_pairs(_folder_cfg(tmp_path).data, 0)
    assert torch.equal(truth.b, data.b) and truth.info["heldout"].startswith("no")


def test_folder_pairs_with_a_missing_partner_or_a_size_mismatch_name_the_file(tmp_path, cli):
    _write(tmp_path / "A" / "x.png", 1)
    _write(tmp_path / "A" / "lonely.png", 1)
    _write(tmp_path / "B" / "x.png", 2)
    code, _, err = cli("train", "shapes-pix2pix", "data.name=folder", "data.pair=folders", f"data.path={tmp_path}",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and "lonely.png has no partner" in err and not (tmp_path / "run").exists()
    (tmp_path / "A" / "lonely.png").unlink()
    _write(tmp_path / "B" / "x.png", 2, size=(30, 20))
    code, _, err = cli("train", "shapes-pix2pix", "data.name=folder", "data.pair=folders", f"data.path={tmp_path}",
                       "--out", str(tmp_path / "run"))
    assert code == 2 and "20×20" in err and "30×20" in err and not (tmp_path / "run").exists()
    _write(tmp_path / "B" / "x.png", 2)
    _write(tmp_path / "B" / "extra.png", 2)  # a B without an A is as wrong as an A without a B
    with pytest.raises(UserError, match="extra.png has no partner"):
        load_dataset(_folder_cfg(tmp_path).data, 0)


def test_unpaired_folders_load_each_domain_and_have_no_truth(tmp_path):
    for i in range(3):
        _write(tmp_path / "h" / f"{i}.png", i)
    _write(tmp_path / "z" / "0.png", 99)
    cfg = _folder_cfg(tmp_path, f"data.path_a={tmp_path / 'h'}", f"data.path_b={tmp_path / 'z'}", "data.paired=false")
    data = load_dataset(cfg.data, 0)
    assert len(data) == 3 and len(data.b) == 1 and not data.paired
    with pytest.raises(Exception, match="no true B"):
        load_truth_pairs(cfg.data, 0)


def test_translation_metrics_compare_rounded_outputs_and_baselines_with_the_true_b(tiny_run):
    """Catches PSNR taken against A, the identity baseline computed on G(A), the histogram baseline matched to
    domain A, outputs measured unrounded (unlike their PNGs), the truth's label share read on G(A), and PPL
    (a noise-to-image metric) applied to a translator."""
    import gankit
    from gankit.report.compare import round_to_8bit
    from gankit.report.evaluate import HISTOGRAM_REFERENCE, RUN_METRICS, RunEval, translation

    run = RunEval(gankit.load(tiny_run), tiny_run)
    values, protocol = translation(run)
    truth = load_truth_pairs(run.config.data, run.config.seed)
    rows = torch.arange(len(truth))
    a, b = truth.take(rows)[0], truth.take_b(rows)
    out = round_to_8bit(run.gen.sample(inputs=a))
    train = load_dataset(run.config.data, run.config.seed)
    reference = train.take_b(torch.arange(min(len(train.b), HISTOGRAM_REFERENCE)))
    assert values["psnr_to_truth"] == pytest.approx(psnr(out, b), rel=1e-9)
    assert values["l1_to_truth"] == pytest.approx(l1(out, b), rel=1e-9)
    assert values["baseline_identity_psnr"] == pytest.approx(psnr(a, b), rel=1e-9)
    assert values["baseline_histogram_psnr"] == pytest.approx(psnr(histogram_match(a, reference), b), rel=1e-9)
    names = [truth.class_names[i] for i in truth.y.tolist()]
    read = run.predict(b)
    assert values["label_preservation_truth"] == pytest.approx(np.mean([p == t for p, t in zip(read, names)]))
    assert protocol["rounded_to_8bit"] is True and not RUN_METRICS["ppl"].applies(run)
