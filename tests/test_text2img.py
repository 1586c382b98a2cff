"""Text-to-image: captioned shapes, the matching-aware game, prompts, and attribute accuracy."""

import json

import pytest
import torch
import torch.nn.functional as F

from gankit import losses
from gankit.config import DataConfig
from gankit.data import CaptionBatch, kind_of, load_caption_test, load_dataset
from gankit.data.base import as_float
from gankit.data.captions import ATTRIBUTES, MAX_LEN, POSITIONS, TEMPLATES, Layout, detokenize, named, \
    tokenize, unseen_pairs, vocabulary
from gankit.data.shapes import COLORS, SHAPES
from gankit.errors import UserError
from gankit.metrics.attributes import read_attributes
from gankit.metrics.shapes_classifier import load_shapes_classifier
from gankit.train import load
from gankit.variants import Context, build_variant, resolve
from gankit.variants.text2img import FAKE, Text2ImgConfig

TINY = ["data.n=256", "model.width=8", "model.z_dim=16", "model.shared_dim=16", "text2img.embed_dim=8",
        "text2img.text_dim=8", "text2img.joint_dim=8", "train.batch_size=8"]
EASY = DataConfig(name="captions", n=600, size_range=(0.3, 0.3), jitter=0.5, rotation=0, noise=0, gradient=0)


GRU = ("text2img.layered=false", "text2img.object_area=0")  # the one-piece G, GRU-read captions


def _setup(*overrides: str):
    """A freshly seeded tiny text2img variant (the one-piece G unless `overrides` ask for the layered one) and a fixed
    batch of 8 captioned images."""
    torch.manual_seed(0)
    cfg = resolve("shapes32-text2img", [*TINY, *GRU, *overrides])[0]
    data = load_dataset(cfg.data, cfg.seed)
    sampler = kind_of(data.spec()).sampler(data, 8, 0, torch.device("cpu"))
    return build_variant(cfg, data.spec()), sampler.next(), data


def _d(variant, x, tokens):
    return variant.D(x, variant.encoder(tokens))


def _g(variant, z, tokens):
    return variant.G(z, variant.g_reader(tokens))


# ----------------------------------------------------------------------------------------------- data


def test_captions_name_the_attributes_of_the_image_they_describe():
    data = load_dataset(EASY)
    a = data.attributes
    text = data.captions(torch.arange(3), torch.zeros(3, dtype=torch.long))
    for i, line in enumerate(text):
        assert line == (f"a {COLORS[a['color'][i]]} {SHAPES[a['shape'][i]]} "
                        f"{dict(zip(POSITIONS, ['in the top left', 'at the top', 'in the top right', 'on the left', 'in the centre', 'on the right', 'in the bottom left', 'at the bottom', 'in the bottom right']))[POSITIONS[a['position'][i]]]} "
                        f"on a {['dark', 'light'][a['background'][i]]} background")
    # every paraphrase names shape and colour; the long ones name all four
    assert all({"shape", "color"} <= set(named(t)) for t in range(len(TEMPLATES)))
    assert named(0) == ATTRIBUTES


def test_unseen_pairs_never_appear_in_training_and_only_they_in_the_composition_test():
    data = load_dataset(DataConfig(**{**EASY.model_dump(), "n": 3000}))
    shape, color = data.attributes["shape"], data.attributes["color"]
    green_triangles = (shape == SHAPES.index("triangle")) & (color == COLORS.index("green"))
    white_crosses = (shape == SHAPES.index("cross")) & (color == COLORS.index("white"))
    assert not green_triangles.any() and not white_crosses.any()
    assert (color == COLORS.index("green")).any() and (shape == SHAPES.index("triangle")).any()
    test, note = load_caption_test(EASY, 0, 200, unseen=True)
    pairs = set(zip(test.attributes["shape"].tolist(), test.attributes["color"].tolist()))
    assert pairs == {(SHAPES.index("triangle"), COLORS.index("green")), (SHAPES.index("cross"), COLORS.index("white"))}
    white = test.attributes["color"] == COLORS.index("white")
    assert (test.attributes["background"][white] == 0).all()  # white shapes keep dark backgrounds, as in training
    assert "unseen" in note


def test_any_unseen_pair_is_kept_out_of_training_and_only_it():
    data = load_dataset(DataConfig(**{**EASY.model_dump(), "n": 2000, "unseen": ["red star"]}))
    shape, color = data.attributes["shape"], data.attributes["color"]
    star, red = shape == SHAPES.index("star"), color == COLORS.index("red")
    assert not (star & red).any() and star.any() and red.any()
    green_triangles = (shape == SHAPES.index("triangle")) & (color == COLORS.index("green"))
    assert green_triangles.any()  # the default pairs are no longer held out


def test_unseen_names_must_be_exactly_a_colour_and_a_shape():
    assert unseen_pairs(["red star"]) == [(SHAPES.index("star"), COLORS.index("red"))]
    for bad in ("green triangle square", "triangle green", "green"):
        with pytest.raises(UserError, match="is not 'colour shape'"):
            unseen_pairs([bad])


def test_objects_lie_in_the_cell_their_caption_names():
    data = load_dataset(EASY)
    layout = Layout(0.3, 0.5)
    centres = layout.centres(data.attributes["position"], torch.Generator().manual_seed(0))
    assert torch.equal(layout.cell(centres), data.attributes["position"])
    x = as_float(data.x)
    top_left = data.attributes["position"] == 0
    mass = (x[top_left] - x[top_left][:, :, :1, :1]).abs().sum(1)  # away from the corner pixel's colour
    assert mass[:, :16, :16].sum() > 3 * mass[:, 16:, 16:].sum()


def test_tokenize_round_trips_and_unknown_words_name_the_vocabulary():
    vocab = vocabulary()
    text = ["A blue circle, in the centre.", "a red star"]
    tokens = tokenize(text, vocab)
    assert tokens.shape == (2, MAX_LEN) and (tokens[1, 3:] == 0).all()
    assert detokenize(tokens, vocab) == ["a blue circle in the centre", "a red star"]
    with pytest.raises(UserError) as err:
        tokenize(["a blue hexagon"], vocab)
    assert "hexagon" in err.value.message and "circle" in err.value.hint
    with pytest.raises(UserError):
        tokenize([""], vocab)


def test_sampler_gives_mismatched_captions_differing_in_one_named_attribute_the_first_in_shape():
    data = load_dataset(EASY)
    sampler = kind_of(data.spec()).sampler(data, 64, 0, torch.device("cpu"))
    batch = sampler.next()
    assert isinstance(batch, CaptionBatch) and batch.text.shape == (64, MAX_LEN)
    assert batch.wrong.shape == (64, 2, MAX_LEN)
    vocab = data.info["text"]["vocab"]
    for right, first, second in zip(detokenize(batch.text, vocab), detokenize(batch.wrong[:, 0], vocab),
                                    detokenize(batch.wrong[:, 1], vocab)):
        a, b = right.split(), first.split()
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(a) == len(b) and len(diff) == 1 and diff[0][0] in SHAPES and diff[0][1] in SHAPES
        c = second.split()
        assert right != second and not set(SHAPES) & (set(a) ^ set(c))  # another attribute; the shape stays
    # a pure function of (seed, cursor): a resumed sampler gives the same captions
    again = kind_of(data.spec()).sampler(data, 64, 0, torch.device("cpu"))
    again.load_state_dict({"cursor": 0})
    same = again.next()
    assert torch.equal(same.text, batch.text) and torch.equal(same.wrong, batch.wrong)
    assert not torch.equal(sampler.next().text, batch.text)


@pytest.mark.parametrize("unseen", [["green triangle", "white cross"], []])
def test_no_caption_d_reads_names_a_held_out_pair_not_even_a_mismatched_one(unseen):
    """A held-out pair's caption that reached D only as a negative would teach D that it is always fake."""
    data = load_dataset(DataConfig(**{**EASY.model_dump(), "unseen": unseen}))
    sampler = kind_of(data.spec()).sampler(data, 64, 0, torch.device("cpu"))
    vocab = data.info["text"]["vocab"]
    named = []
    for _ in range(10):  # 640 images, 1,280 mismatched captions
        batch = sampler.next()
        named += [set(text.split()) for text in detokenize(torch.cat([batch.text, batch.wrong.flatten(0, 1)]), vocab)]
    held_out = sum({"green", "triangle"} <= words or {"white", "cross"} <= words for words in named)
    if unseen:
        assert held_out == 0
        assert sum({"green", "square"} <= words for words in named) > 20  # other pairs with those words still come
    else:
        assert held_out > 20  # the same draws name them when nothing is held out: the check can see them


def test_drop_color_leaves_the_colour_word_out_of_that_share_of_captions_and_their_mismatches():
    plain = load_dataset(EASY)
    data = load_dataset(EASY.model_copy(update={"drop_color": 0.5}))
    batch = kind_of(data.spec()).sampler(data, 256, 0, torch.device("cpu")).next()
    vocab = data.info["text"]["vocab"]
    rows = list(zip(detokenize(batch.text, vocab), detokenize(batch.wrong[:, 0], vocab),
                    detokenize(batch.wrong[:, 1], vocab)))
    bare = [r for r in rows if not set(COLORS) & set(r[0].split())]
    assert 0.35 < len(bare) / len(rows) < 0.65
    for right, *wrong in bare:  # still true of the image: its shape, and no colour in the mismatches either
        assert set(right.split()) & set(SHAPES) and all(w != right and not set(COLORS) & set(w.split()) for w in wrong)
    assert any(len(r[0].split()) == 2 for r in bare)  # "a star": the shortest paraphrase without its colour
    # the images and which rows they are do not change, only the words
    again = kind_of(plain.spec()).sampler(plain, 256, 0, torch.device("cpu")).next()
    assert torch.equal(again.x, batch.x)
    assert all(set(COLORS) & set(r.split()) for r in detokenize(again.text, vocab))


def test_two_processes_each_get_their_half_of_the_one_process_batch():
    """Data-parallel runs: the captions and mismatches are drawn for the global batch, then sliced."""
    from gankit.data import Shard

    data = load_dataset(EASY)
    whole = kind_of(data.spec()).sampler(data, 8, 3, torch.device("cpu")).next()
    halves = []
    for rank in range(2):
        sampler = kind_of(data.spec()).sampler(data, 8, 3, torch.device("cpu"))
        sampler.shard = Shard(rank, 2)
        halves.append(sampler.next())
    for field in ("x", "text", "wrong"):
        assert torch.equal(torch.cat([getattr(h, field) for h in halves]), getattr(whole, field))


def test_bad_unseen_pair_is_a_clear_error(cli, tmp_path):
    code, _, err = cli("train", "shapes32-text2img", "data.unseen=[green hexagon]", "--out", str(tmp_path / "r"))
    assert code == 2 and "data.unseen" in err and "hexagon" in err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_text2img_refuses_data_without_captions(cli, tmp_path):
    code, _, err = cli("train", "shapes32-text2img", "data.name=shapes", "--out", str(tmp_path / "r"))
    assert code == 2 and "captions" in err


# ----------------------------------------------------------------------------------------------- readers


def test_position_and_background_readers_are_exact_on_real_images():
    data = load_dataset(EASY)
    classifier, _ = load_shapes_classifier()
    seen = read_attributes(as_float(data.x), classifier, Layout(0.3, 0.5))
    for name in ATTRIBUTES:
        accuracy = (seen[name] == data.attributes[name]).float().mean().item()
        assert accuracy >= (0.95 if name == "shape" else 0.99), name
    blank = torch.zeros(2, 3, 32, 32)
    assert (read_attributes(blank, classifier, Layout(0.3, 0.5))["position"] == -1).all()  # no object, no cell


def test_attribute_accuracy_by_group_names_the_pair_that_fails():
    from gankit.data.captions import color_shape_pairs
    from gankit.metrics.attributes import attribute_accuracy

    data, _ = load_caption_test(EASY, 3, 120, unseen=True)
    a = data.attributes
    truth = {name: a[name].clone() for name in ATTRIBUTES}
    cross = a["shape"] == SHAPES.index("cross")
    truth["shape"][cross] = SHAPES.index("ring")  # ask the white crosses for rings: that pair alone reads wrong
    acc = attribute_accuracy(as_float(data.x), truth, load_shapes_classifier()[0], Layout(0.3, 0.5),
                             by=color_shape_pairs(a))
    by = acc["by_group"]
    assert set(by) == {"green triangle", "white cross"} and 0.2 < cross.float().mean() < 0.8
    assert by["white cross"]["shape"] == 0.0 and by["green triangle"]["shape"] >= 0.9
    assert by["white cross"]["color"] >= 0.9 and abs(acc["shape"] - by["green triangle"]["shape"] * (~cross).float().mean()) < 1e-6


def test_shipped_matching_model_finds_the_caption_of_real_images_and_not_of_others():
    """R-precision's judge: its own caption beats 99 others for held-out real images, a random caption does not."""
    from gankit.data.captions import other_captions
    from gankit.metrics.matching import CANDIDATES, load_matching_model, r_precision

    model, card = load_matching_model()
    assert card["vocab"] == vocabulary() and card["r_precision_real"]["value"] >= 0.95
    data, _ = load_caption_test(EASY, 5, 150, unseen=False)
    rows = torch.arange(len(data))
    own = tokenize(data.captions(rows, torch.zeros_like(rows)), vocabulary())
    others = [tokenize(o, vocabulary()) for o in other_captions(data, CANDIDATES - 1, torch.Generator().manual_seed(0))]
    x = as_float(data.x)
    assert r_precision(model, x, own, others) >= 0.95
    assert r_precision(model, x, own.roll(1, 0), others) <= 0.2  # someone else's caption is rarely the best match


# ----------------------------------------------------------------------------------------------- wiring


def test_d_loss_is_the_game_on_real_against_fake_and_mismatched():
    """Catches real and fake logits swapped, the mismatched-caption term dropped, or D judging the wrong captions."""
    variant, batch, _ = _setup()
    variant.D.eval()  # no power iteration of spectral norm between the loss and its recomputation
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0].detach()
    real = _d(variant, batch.x, batch.text)
    fake_logits = _d(variant, fake, batch.text)
    wrong = variant.D(batch.x.repeat_interleave(2, 0), variant.encoder(batch.wrong.flatten(0, 1)))
    expected = 0.5 * (losses.d_hinge(real, fake_logits) + losses.d_hinge(real, wrong))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["d_wrong"].item() == pytest.approx(wrong.mean().item(), rel=1e-5)
    assert loss.item() != pytest.approx(losses.d_hinge(real, fake_logits).item(), rel=1e-3)
    assert loss.item() != pytest.approx(0.5 * (losses.d_hinge(fake_logits, real) + losses.d_hinge(wrong, real)).item(),
                                        rel=1e-3)
    off, _, _ = _setup("text2img.mismatch=false")
    off.D.eval()
    plain, _ = off.loss("D", batch, Context())
    assert plain.item() == pytest.approx(losses.d_hinge(real, fake_logits).item(), rel=1e-5)


def test_d_steps_prefer_the_right_caption_over_the_mismatched_ones():
    """Catches the mismatched term with the wrong sign or dropped: five D steps (Adam, as the preset trains) must
    widen the gap between D on real images with their captions and with their mismatched ones more than the same
    steps without that term do (one SGD step is too small a change to tell on every batch). G reads D's encoder
    here: with an encoder of its own, G's first fakes pair each caption with an unrelated image, and the fake term
    alone widens the gap as much (the exact loss is checked above for the preset)."""
    def gap(variant, batch):
        right = _d(variant, batch.x, batch.text)
        wrong = 0.5 * (_d(variant, batch.x, batch.wrong[:, 0]) + _d(variant, batch.x, batch.wrong[:, 1]))
        return (right - wrong).mean()

    def gap_change(*overrides: str) -> float:
        variant, batch, _ = _setup("loss.name=non_saturating", "text2img.own_encoder=false", *overrides)
        variant.D.eval()
        with torch.no_grad():
            before = gap(variant, batch)
        optimizer = torch.optim.Adam(variant.groups["D"].parameters(), lr=4e-4, betas=(0.0, 0.999))
        for _ in range(5):
            optimizer.zero_grad()
            variant.loss("D", batch, Context())[0].backward()
            optimizer.step()
        with torch.no_grad():
            return (gap(variant, batch) - before).item()

    with_term, without = gap_change(), gap_change("text2img.mismatch=false")
    assert with_term > 0.01 and with_term > without + 0.01


def test_g_loss_is_the_game_on_its_fakes_plus_weighted_kl():
    """Catches the KL term dropped, unweighted, or of the wrong sign, and G judged with other captions."""
    variant, batch, _ = _setup("text2img.kl_weight=3")
    variant.D.eval()
    ctx = Context()
    variant.loss("D", batch, ctx)
    fake, mu, log_var, *_ = ctx.values[FAKE]
    expected = losses.game("hinge").g(_d(variant, fake, batch.text)) + 3 * losses.gaussian_kl(mu, log_var)
    loss, scalars = variant.loss("G", batch, ctx)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["kl"].item() > 0


def _info_nce(variant, x, tokens, temperature=0.1):
    """The contrastive loss, computed here from D's parts: cosine logits of pooled image features against text."""
    image = F.normalize(variant.D.image_embed(variant.D.feature_map(x).sum(dim=(2, 3))), dim=1)
    text = F.normalize(variant.D.text(variant.encoder(tokens)), dim=1)
    logits = image @ text.T / temperature
    target = torch.arange(len(x))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _read_words(variant, x, tokens):
    """The word-prediction loss, computed here: per image, the summed BCE of the word head on D's pooled features
    against which words (padding aside) its caption holds."""
    logits = variant.word_head(variant.D.feature_map(x).sum(dim=(2, 3)))
    holds = torch.stack([torch.isin(torch.arange(logits.shape[1]), row) for row in tokens]).float()
    return F.binary_cross_entropy_with_logits(logits[:, 1:], holds[:, 1:], reduction="none").sum(1).mean()


@pytest.mark.parametrize("key, term", [("contrastive", _info_nce), ("words", _read_words)])
def test_extra_terms_are_added_to_both_players_with_their_weight(key, term):
    """Catches the contrastive or word-prediction terms dropped, unweighted, with the wrong sign, or reading other
    images' captions."""
    plain, batch, _ = _setup()
    both, _, _ = _setup(f"text2img.{key}=2")
    for variant in (plain, both):
        variant.D.eval()
    ctx_plain, ctx_both = Context(), Context()
    torch.manual_seed(1)
    d_plain, _ = plain.loss("D", batch, ctx_plain)
    torch.manual_seed(1)  # the same noise, so the same fakes
    d_both, scalars = both.loss("D", batch, ctx_both)
    real = term(both, batch.x, batch.text)
    assert d_both.item() == pytest.approx((d_plain + 2 * real).item(), rel=1e-5)
    assert scalars[f"d_{key}"].item() == pytest.approx(real.item(), rel=1e-5)
    assert real.item() != pytest.approx(term(both, batch.x, batch.text.roll(1, 0)).item(), rel=1e-3)
    fake = ctx_both.values[FAKE][0]
    g_plain, _ = plain.loss("G", batch, ctx_plain)
    g_both, _ = both.loss("G", batch, ctx_both)
    assert g_both.item() == pytest.approx((g_plain + 2 * term(both, fake, batch.text)).item(), rel=1e-5)


def test_interpolation_adds_the_game_on_midpoint_captions_to_g_with_its_weight():
    """Catches GAN-INT's term dropped, unweighted or of the wrong sign, G drawing for unmixed captions, and D judging
    the midpoint images with other text than the midpoint of its own vectors."""
    plain, batch, _ = _setup()
    both, _, _ = _setup("text2img.interpolate=2")
    for variant in (plain, both):
        variant.D.eval()
    ctx_plain, ctx_both = Context(), Context()
    for variant, ctx in ((plain, ctx_plain), (both, ctx_both)):
        torch.manual_seed(1)
        variant.loss("D", batch, ctx)
    g_plain, _ = plain.loss("G", batch, ctx_plain)
    torch.manual_seed(2)
    g_both, scalars = both.loss("G", batch, ctx_both)
    pairs = batch.text.roll(1, 0)  # each caption with its neighbour, for the first half of the batch
    g_mid = 0.5 * (both.g_reader(batch.text) + both.g_reader(pairs))[:4]
    d_mid = 0.5 * (both.encoder(batch.text) + both.encoder(pairs))[:4]
    torch.manual_seed(2)  # the same noise as the G step's
    fake = both.fakes(g_mid)[0]
    between = losses.game("hinge").g(both.D(fake, d_mid))
    assert g_both.item() == pytest.approx((g_plain + 2 * between).item(), rel=1e-5)
    assert scalars["g_between"].item() == pytest.approx(between.item(), rel=1e-5)
    unmixed = losses.game("hinge").g(both.D(fake, both.encoder(batch.text[:4])))
    assert between.item() != pytest.approx(unmixed.item(), rel=1e-3)
    torch.manual_seed(2)
    drawn_unmixed = both.fakes(both.g_reader(batch.text[:4]))[0]
    assert not torch.allclose(fake, drawn_unmixed, atol=1e-4)


def test_the_word_head_is_trained_with_d():
    plain, both = _setup()[0], _setup("text2img.words=1")[0]
    assert plain.word_head is None and both.word_head in both.groups["D"].modules


def test_d_loss_trains_the_text_encoder_and_g_loss_does_not():
    """Catches G pulling the shared encoder toward captions that are easy to draw instead of ones D can check."""
    variant, batch, _ = _setup()
    ctx = Context()
    loss, _ = variant.loss("D", batch, ctx)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in variant.encoder.parameters() if p.requires_grad
               and p.dim() > 1)
    variant.zero_grad(set_to_none=True)
    loss, _ = variant.loss("G", batch, ctx)
    loss.backward()
    assert all(p.grad is None for p in variant.encoder.parameters())
    assert any(p.grad is not None for p in variant.G.parameters())
    assert not set(map(id, variant.encoder.parameters())) & set(map(id, variant.groups["G"].parameters()))


@pytest.mark.parametrize("layered", ["false", "true"])
def test_an_own_encoder_is_trained_by_g_loss_only_and_is_what_the_export_samples_with(layered):
    """Catches G's own encoder (a routed one for the layered G) left out of G's optimizer or the export, trained by
    D, or not read when sampling."""
    variant, batch, _ = _setup("text2img.own_encoder=true", f"text2img.layered={layered}")
    if layered == "true":
        with torch.no_grad():
            variant.g_encoder.query.normal_()  # at zero, as it starts, the keys get no gradient yet
    ctx = Context()
    loss, _ = variant.loss("D", batch, ctx)
    loss.backward()
    assert all(p.grad is None for p in variant.g_encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in variant.encoder.parameters())
    variant.zero_grad(set_to_none=True)
    loss, _ = variant.loss("G", batch, ctx)
    loss.backward()
    assert all(p.grad is None for p in variant.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in variant.g_encoder.parameters()
               if p.dim() > 1)
    g_params = set(map(id, variant.groups["G"].parameters()))
    assert set(map(id, variant.g_encoder.parameters())) <= g_params
    assert not set(map(id, variant.encoder.parameters())) & g_params
    exported = variant.generator_state()
    assert any(k.startswith("g_encoder.") for k in exported) and not any(k.startswith("encoder.") for k in exported)
    request = variant.prepare(variant.progress_request(8, torch.Generator().manual_seed(0), inputs=batch.text))
    with torch.no_grad():
        before = variant.run_generator(request)
        variant.g_encoder.embed.weight.mul_(-1)
        assert (variant.run_generator(request) - before).abs().mean() > 1e-3


def test_one_g_step_raises_d_on_the_fakes():
    variant, batch, _ = _setup("text2img.kl_weight=0")
    variant.D.eval()
    ctx = Context()
    variant.loss("D", batch, ctx)
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = _d(variant, _g(variant, z, batch.text), batch.text).mean()
    optimizer = torch.optim.SGD(variant.groups["G"].parameters(), lr=1e-3)
    loss, _ = variant.loss("G", batch, ctx)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert _d(variant, _g(variant, z, batch.text), batch.text).mean() > before


@pytest.mark.parametrize("own", ["false", "true"])
def test_both_players_read_the_caption(own):
    """Catches a zeroed text path: G's image and D's verdict must change with the caption, at the same noise."""
    variant, batch, _ = _setup(f"text2img.own_encoder={own}")
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (_g(variant, z, batch.text) - _g(variant, z, batch.wrong[:, 0])).abs().mean() > 1e-3
        assert (_d(variant, batch.x, batch.text) - _d(variant, batch.x, batch.wrong[:, 0])).abs().mean() > 1e-4
        # the position reaches G's 4×4 input projection, not only its (spatially uniform) batch norms
        mu, _ = variant.G.condition(variant.encoder(batch.text))
        first = variant.G.body.linear.in_features
        assert first == variant.G.body.z_chunks[0] + mu.shape[1]


@pytest.mark.parametrize("mode", ["gru+bag", "bag"])
def test_bag_of_words_is_the_mean_word_embedding_and_carries_the_caption_alone(mode):
    """Catches a bag path that counts padding, or that is built but never reaches the nets: with the GRU silenced
    (zero weights give zero states) or absent, G and D must still read the caption through the bag."""
    variant, batch, _ = _setup(f"text2img.encoder={mode}", "text2img.own_encoder=true")
    gru = 16 if mode == "gru+bag" else 0
    for encoder in (variant.encoder, variant.g_encoder):
        assert encoder.out_dim == gru + 8
        assert (encoder.gru is None) == (mode == "bag")
        with torch.no_grad():
            words = encoder.embed(batch.text)
            n_words = (batch.text != 0).sum(1, keepdim=True)
            assert torch.allclose(encoder(batch.text)[:, gru:], words.sum(1) / n_words, atol=1e-6)
            if encoder.gru is not None:
                for weight in encoder.gru.parameters():
                    weight.zero_()
                assert encoder(batch.text)[:, :gru].abs().max() == 0
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (_g(variant, z, batch.text) - _g(variant, z, batch.wrong[:, 0])).abs().mean() > 1e-3
        assert (_d(variant, batch.x, batch.text) - _d(variant, batch.x, batch.wrong[:, 0])).abs().mean() > 1e-4


def test_runs_saved_with_the_bag_of_words_switch_still_load():
    """Catches a rename that breaks `--resume` and eval of runs saved before `text2img.encoder` existed."""
    assert Text2ImgConfig.model_validate({"bag_of_words": True}).encoder == "gru+bag"
    assert Text2ImgConfig.model_validate({"bag_of_words": False}).encoder == "gru"
    assert Text2ImgConfig.model_validate({"encoder": "bag"}).encoder == "bag"


# ----------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tiny_run(train_tiny):
    return train_tiny("shapes32-text2img", *TINY, "train.steps=4", "train.sample_every=2", "train.log_every=2",
                      "train.checkpoint_every=0")


def test_prompt_from_the_api_and_the_cli(tiny_run, cli, tmp_path):
    gen = load(tiny_run)
    a = gen.sample(4, seed=0, prompt="a blue circle in the centre")
    b = gen.sample(4, seed=0, prompt="a red star on the left on a light background")
    assert a.shape == (4, 3, 32, 32) and not torch.equal(a, b)
    assert torch.equal(gen.sample(4, seed=0, prompt="a blue circle in the centre"), a)
    per_sample = gen.sample(seed=0, prompt=["a blue circle", "a red star"])
    assert per_sample.shape[0] == 2
    with pytest.raises(UserError) as err:
        gen.sample(2, prompt="a blue hexagon")
    assert "hexagon" in err.value.message
    out = tmp_path / "blue.png"
    code, _, err_text = cli("sample", str(tiny_run), "--prompt", "a blue circle", "-n", "4", "--out", str(out))
    assert code == 0 and out.is_file(), err_text
    from PIL import Image
    assert Image.open(out).info.get("gankit:prompt") == "a blue circle"
    code, _, err_text = cli("sample", str(tiny_run), "--prompt", "a blue hexagon", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "hexagon" in err_text and "circle" in err_text and not (tmp_path / "x.png").exists()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a blue circle\n\na green ring at the top\n")
    code, _, err_text = cli("sample", str(tiny_run), "--input", str(prompts), "--out", str(tmp_path / "p.npz"))
    assert code == 0, err_text
    import numpy as np
    assert np.load(tmp_path / "p.npz")["samples"].shape[0] == 2
    # one PNG per prompt of the file, each labelled with its own prompt
    code, _, err_text = cli("sample", str(tiny_run), "--input", str(prompts), "--out", str(tmp_path / "each") + "/")
    assert code == 0, err_text
    labels = [Image.open(tmp_path / "each" / f"00000{i}.png").info for i in range(2)]
    assert [info["gankit:prompt"] for info in labels] == ["a blue circle", "a green ring at the top"]
    assert all(info["gankit:input"] == str(prompts) for info in labels)


def test_word_ids_from_an_npz_are_inputs_and_translate_points_to_prompts(tiny_run, cli, tmp_path):
    import numpy as np

    gen = load(tiny_run)
    ids = gen.data_kind.read_prompt(["a blue circle", "a red star"], gen.spec)
    np.savez(tmp_path / "ids.npz", samples=ids.numpy())
    code, _, err = cli("sample", str(tiny_run), "--input", str(tmp_path / "ids.npz"), "--out", str(tmp_path / "s.npz"))
    assert code == 0 and np.load(tmp_path / "s.npz")["samples"].shape == (2, 3, 32, 32), err
    code, _, err = cli("translate", str(tiny_run), str(tmp_path / "ids.npz"), "--out", str(tmp_path / "t") + "/")
    assert code == 2 and "draws images from text prompts" in err and "--prompt" in err


def test_prompt_is_refused_by_models_without_text(train_tiny, cli, tmp_path):
    run = train_tiny("ring8-gan", "train.steps=2", "train.sample_every=0", "train.checkpoint_every=0")
    code, _, err = cli("sample", str(run), "--prompt", "a blue circle", "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "prompt" in err


def test_eval_reports_attribute_accuracy_on_seen_and_unseen_pairs(tiny_run, cli):
    code, out, err = cli("eval", str(tiny_run), "--json", "-n", "200")
    assert code == 0, err
    result = json.loads(out)
    for key in ("attribute_accuracy", "attribute_accuracy_unseen", "attribute_accuracy_real"):
        assert set(result[key]) == set(ATTRIBUTES)
    assert result["r_precision_real"] > 0.9 and result["r_precision"] < 0.5 and "r_precision_unseen" in result
    assert result["attribute_accuracy_real"]["color"] > 0.99  # the ceiling: real images of the same captions
    assert result["attribute_accuracy"]["color"] < 0.6  # four steps of training draw no colour on request
    assert "unseen" in result["protocol"]["attribute_accuracy"]["splits"]["attribute_accuracy_unseen"]
    assert result["protocol"]["attribute_accuracy"]["rounded_to_8bit"] is True  # as every image metric says
    by_pair = result["attribute_accuracy_unseen_by_pair"]  # the default unseen pairs, each read on its own images
    assert set(by_pair) == {"green triangle", "white cross"} and all(set(v) == set(ATTRIBUTES) for v in by_pair.values())
    mean = sum(v["color"] for v in by_pair.values()) / 2  # both pairs drawn about equally often in 600 captions
    assert abs(mean - result["attribute_accuracy_unseen"]["color"]) < 0.1


def test_attribute_accuracy_reads_fakes_as_their_pngs_hold_them(tiny_run, monkeypatch):
    """Catches the caption metrics read on unrounded fakes: the protocol says generated images are rounded to 8 bits,
    as a saved PNG holds them, and `--no-round` (round_8bit off) is the only way to skip it."""
    from gankit.report import evaluate
    from gankit.report.compare import round_to_8bit

    read = []
    score = evaluate.attribute_accuracy
    monkeypatch.setattr(evaluate, "attribute_accuracy", lambda x, *a, **k: read.append(x) or score(x, *a, **k))
    gen = load(tiny_run)
    for rounded in (True, False):
        read.clear()
        evaluate.RUN_METRICS["attribute_accuracy"].compute(evaluate.RunEval(gen, tiny_run, round_8bit=rounded))
        fakes = read[0::2]  # fakes then the real images of the same captions, seen split then unseen
        assert len(fakes) == 2 and all(torch.equal(x, round_to_8bit(x)) == rounded for x in fakes)


@pytest.mark.slow
def test_a_short_training_draws_the_background_the_caption_names(tmp_path):
    """Learning, end to end through the trainer: after 300 small steps at 16×16 the background follows the
    caption (chance 0.5), and only when the caption names it (a caption without one leaves it at chance)."""
    from gankit.metrics.attributes import read_background
    from gankit.train import Trainer

    cfg = resolve("shapes32-text2img", ["data.n=2000", "data.resolution=16", "model.width=8", "model.z_dim=16",
                                        "train.steps=300", "optim.ema=null", "train.sample_every=0",
                                        "train.checkpoint_every=0", "train.log_every=50"])[0]
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    gen = load(tmp_path / "run")
    data, _ = load_caption_test(cfg.data, 0, 300, unseen=False)
    rows = torch.arange(len(data))
    named_tone = gen.sample(seed=0, prompt=data.captions(rows, torch.zeros_like(rows)))  # template 0 names it
    unnamed = gen.sample(seed=0, prompt=data.captions(rows, torch.full_like(rows, 5)))  # "a red star"
    truth = data.attributes["background"]
    hit = (read_background(named_tone) == truth).float().mean().item()
    assert hit >= 0.75 and hit >= (read_background(unnamed) == truth).float().mean().item() + 0.2


# ----------------------------------------------------------------------------------------------- layered G

LAYERED = ("text2img.own_encoder=true", "text2img.layered=true")


def test_attention_encoder_parts_are_each_heads_weighted_mean_word():
    """Catches an attention encoder that counts padding, whose weights do not sum to one over the words, whose heads
    are not weighted means of the word embeddings, or whose parts do not have the heads `text2img.heads` gives."""
    variant, batch, _ = _setup(*LAYERED, "text2img.heads=[2,1,1]")
    encoder = variant.g_encoder
    assert encoder.part_dims == (16, 8, 8) and variant.G.part_dims == (16, 8, 8)
    with torch.no_grad():
        encoder.query.normal_()
        weights = encoder.attention(batch.text)  # (N, heads, L)
        words = batch.text != 0
        assert weights.shape[1] == 4 and torch.allclose(weights.sum(-1), torch.ones(8, 4))
        assert weights.transpose(1, 2)[~words].abs().max() == 0 and weights.std() > 0.01
        heads = encoder(batch.text).view(8, 4, -1)
        assert torch.allclose(heads, weights @ encoder.embed(batch.text), atol=1e-6)
        # text2img.query_gain (10) multiplies the queries, so Adam moves them that much faster
        assert encoder.gain == 10
        encoder.gain, encoder.query[:] = 1.0, encoder.query * 10
        assert torch.allclose(encoder.attention(batch.text), weights, atol=1e-6)
        encoder.gain, encoder.query[:] = 10.0, encoder.query / 10
    parts = encoder(batch.text)
    parts[:, 16:24].sum().backward()  # the object part: its query learns which words it should read
    assert encoder.query.grad[2].abs().sum() > 0 and encoder.query.grad[[0, 1, 3]].abs().sum() == 0


def test_layered_image_is_the_mask_blending_the_object_over_the_background():
    """Catches layers blended the wrong way round, a mask outside [0, 1], or colour grids of another size than
    `text2img.field`."""
    variant, batch, _ = _setup(*LAYERED)
    variant.eval()  # spectral norm's power iteration moves the weights at every training-mode call
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, log_var = variant.G.condition(variant.g_encoder(batch.text))
        mask, thing, ground = variant.G.layers(z, mu, log_var)
        assert 0 <= mask.min() and mask.max() <= 1 and mask.shape[1] == 1 and mask.std() > 0
        assert torch.allclose(variant.G.draw(z, mu, log_var), mask * thing + (1 - mask) * ground)
        # one colour per layer (text2img.field=1): where things are is the mask's alone
        assert thing.std(dim=(2, 3)).max() < 1e-6 and ground.std(dim=(2, 3)).max() < 1e-6
        assert (thing - ground).abs().mean() > 1e-3
    variant, _, _ = _setup(*LAYERED, "text2img.field=4")
    with torch.no_grad():
        _, thing, ground = variant.G.layers(z, mu, log_var)
        assert thing.std(dim=(2, 3)).min() > 1e-4 and ground.std(dim=(2, 3)).min() > 1e-4


def test_each_layer_reads_its_own_part_of_the_caption_and_only_it():
    """Catches a layer cut off from the caption (its part zeroed or never read) or one reading another's part: the
    mask moves with the layout part alone, the object's colours with the object part alone, the background's with
    the background part alone."""
    variant, batch, _ = _setup(*LAYERED)
    variant.eval()  # spectral norm's power iteration moves the weights at every training-mode call
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu, log_var = variant.G.condition(variant.g_encoder(batch.text))
        before = variant.G.layers(z, mu, log_var)
        width = mu.shape[1] // 3
        for part in range(3):
            moved = mu.clone()
            moved[:, part * width:(part + 1) * width] += 1.0
            after = variant.G.layers(z, moved, log_var)
            changed = [(a - b).abs().max().item() > 1e-4 for a, b in zip(after, before)]
            assert changed == [layer == part for layer in range(3)]


def test_a_word_the_layout_heads_pass_over_leaves_the_mask_alone():
    """Catches a layout that reads more than its heads: once the layout and background heads give colour words no
    weight, captions that differ only in colour give the same mask and background and different object colours."""
    variant, batch, data = _setup(*LAYERED)
    variant.eval()  # spectral norm's power iteration moves the weights at every training-mode call
    vocab, encoder = data.spec()["text"]["vocab"], variant.g_encoder
    with torch.no_grad():
        encoder.key.weight.copy_(torch.eye(8))
        encoder.query.zero_()
        encoder.query[[0, 1, 2, 4], 0] = 1.0  # the layout and background heads score a word by its first coordinate
        for colour in COLORS:
            encoder.embed.weight[vocab.index(colour), 0] = -1e3
    red, green = (tokenize([f"a {c} triangle in the top left on a dark background"] * 8, vocab, MAX_LEN)
                  for c in ("red", "green"))
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        layers = [variant.G.layers(z, *variant.G.condition(encoder(t))) for t in (red, green)]
    assert torch.allclose(layers[0][0], layers[1][0], atol=1e-6)  # mask
    assert (layers[0][1] - layers[1][1]).abs().max() > 1e-3  # object colours: its head still reads every word
    assert torch.allclose(layers[0][2], layers[1][2], atol=1e-6)  # background


def test_object_area_adds_its_weighted_penalty_on_the_mask_of_the_images_g_is_judged_on():
    """Catches the mask penalty dropped, unweighted, of the wrong sign, or charged on another mask than the one that
    drew G's images, and a penalty that does not shrink a mask covering most of the image."""
    variant, batch, _ = _setup(*LAYERED, "text2img.kl_weight=3", "text2img.object_area=2")
    variant.D.eval()
    with torch.no_grad():
        variant.G.body.out_conv.bias.fill_(2.0)  # a mask over most of every image: the object layer paints the rest
    ctx = Context()
    variant.loss("D", batch, ctx)
    fake, mu, log_var, mask, *_ = ctx.values[FAKE]
    excess = losses.area_excess(mask, 0.5)
    assert excess.item() > 0.2
    expected = losses.game("hinge").g(_d(variant, fake, batch.text)) + 3 * losses.gaussian_kl(mu, log_var)
    loss, scalars = variant.loss("G", batch, ctx)
    assert loss.item() == pytest.approx(expected.item() + 2 * excess.item(), rel=1e-5)
    assert scalars["g_area"].item() == pytest.approx(excess.item()) and scalars["mask_area"].item() > 0.7
    # descending the penalty alone lowers the mask
    variant.G.zero_grad()
    losses.area_excess(variant.fakes(variant.g_encoder(batch.text))[3], 0.5).backward()
    assert variant.G.body.out_conv.bias.grad.item() > 0


def test_object_area_needs_the_layered_g(cli, tmp_path):
    code, _, err = cli("train", "shapes32-text2img", *TINY, "train.steps=1", "text2img.layered=false",
                       "text2img.object_area=1", "--out", str(tmp_path / "r"))
    assert code == 2 and "text2img.layered=true" in err and not (tmp_path / "r").exists()


def test_layered_needs_g_own_encoder(cli, tmp_path):
    code, _, err = cli("train", "shapes32-text2img", *TINY, "train.steps=1", "text2img.layered=true",
                       "text2img.own_encoder=false", "--out", str(tmp_path / "r"))
    assert code == 2 and "own_encoder=true" in err and not (tmp_path / "r").exists()
