"""Video: moving-shapes / moving-digits clips, the clip kind's writers, MoCoGAN's nets and wiring, the clip metrics,
and the commands (train, sample to GIF and to a folder, eval)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import gankit
from gankit import losses
from gankit.config import DataConfig
from gankit.data import Batch, Shard, kind_of, load_dataset, moving_digits, moving_shapes
from gankit.data.clips import bounce
from gankit.data.shapes import SHAPES, Difficulty
from gankit.io import read_provenance
from gankit.metrics import load_evaluator
from gankit.metrics.video import centroids, consistency, content_distance, crop_around, majority_shares, mean_speed, \
    second_difference, total_variation
from gankit.nets import BigGANDiscriminator, BigGANGenerator
from gankit.nets.video import VideoDiscriminator, VideoGenerator
from gankit.variants import Context, build_variant, resolve
from gankit.variants.mocogan import FAKE

# tiny nets, and the unconditional game with a G that draws every frame, which the wiring tests below were written
# for (the preset is labelled, plays the hinge game and moves a sprite; tests that need those set them)
TINY = ["data.n=48", "mocogan.g_width=8", "mocogan.d_width=8", "mocogan.content_dim=8", "mocogan.motion_dim=4",
        "mocogan.noise_dim=4", "train.batch_size=8", "mocogan.labels=none", "loss.name=non_saturating",
        "optim.beta1=0.5", "mocogan.sprite=false"]
FRAME_NETS = {"dcgan": "mocogan.frame_nets=dcgan", "biggan": "mocogan.frame_nets=biggan",
              "sprite": "mocogan.sprite=true"}
RUN = [*TINY, "train.steps=4", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=0"]


@pytest.fixture(scope="module")
def clips():
    return moving_shapes(64, frames=16, seed=3)


@pytest.fixture(scope="module")
def flat_clips():
    """Clips as the preset draws them: one size, upright, flat dark backgrounds."""
    return moving_shapes(64, frames=16, seed=3, difficulty=Difficulty((0.25, 0.25), 1.0, 0.0, 0.0, 0.0, ("dark",)))


def _setup(*overrides: str, n: int = 8):
    """A freshly seeded tiny MoCoGAN and a fixed batch of n real clips."""
    torch.manual_seed(0)
    cfg = resolve("moving-shapes-video", [*TINY, *overrides])[0]
    data = load_dataset(cfg.data, cfg.seed)
    return build_variant(cfg, data.spec()), Batch(*data.take(torch.arange(n)))


# ------------------------------------------------------------------------------------------------ data


def test_paths_bounce_at_constant_speed_inside_the_frame(clips):
    path, size = clips.info["paths"], 0.2  # (N, T, 2); sizes are drawn from [0.2, 0.42]
    assert path.shape == (64, 16, 2) and (path >= size - 1e-6).all() and (path <= 1 - size + 1e-6).all()
    step = (path[:, 1:] - path[:, :-1]).abs()  # per axis: |v| between bounces, less in a step that bounces
    speed = step.max(dim=1, keepdim=True).values
    assert (step <= speed + 1e-5).all()
    assert ((step - speed).abs() < 1e-5).float().mean() > 0.8
    assert (speed.norm(dim=2) <= 0.05 + 1e-5).all() and (speed.norm(dim=2) >= 0.02 - 1e-5).all()


def test_bounce_reflects_at_the_walls():
    start, velocity = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.2, 0.0]])
    track = bounce(start, velocity, torch.tensor([[0.1]]), torch.tensor([[0.9]]), 5)[0, :, 0]
    assert torch.allclose(track, torch.tensor([0.5, 0.7, 0.9, 0.7, 0.5]), atol=1e-6)


def test_the_pixels_follow_the_path(flat_clips):
    """The object's centroid measured from the rendered pixels (as the motion metric does) is the path's centre."""
    measured = centroids(flat_clips.take(torch.arange(64))[0])
    assert (measured - flat_clips.info["paths"]).abs().max() < 0.03


def test_clips_are_a_pure_function_of_the_seed(clips):
    again = moving_shapes(64, frames=16, seed=3)
    assert torch.equal(again.x, clips.x) and not torch.equal(moving_shapes(64, frames=16, seed=4).x, clips.x)


def test_shape_and_colour_hold_within_each_clip(clips):
    evaluator = load_evaluator("shapes")
    frames = clips.take(torch.arange(64))[0].flatten(0, 1)
    for attribute in ("shape", "color"):
        seen = evaluator.classify(frames, attribute).view(64, 16)
        assert (seen == clips.attributes[attribute][:, None]).float().mean() > 0.97, attribute


def test_moving_digits_keep_the_whole_digit_in_every_frame():
    data = moving_digits(12, frames=8, seed=0)
    assert data.x.shape == (12, 8, 1, 32, 32) and data.spec()["clip"]["crop"] == 16
    ink = data.x.float().sum(dim=(2, 3, 4))  # (N, T): a digit clipped by the border would lose ink
    assert torch.allclose(ink, ink[:, :1].expand_as(ink))
    assert mean_speed(data.info["paths"]) > 0.015


def test_digit_crops_follow_the_digit():
    """The digits evaluator reads a crop centred on the measured centroid: the same digit pixels in every frame."""
    data = moving_digits(6, frames=8, seed=1)
    x = data.take(torch.arange(6))[0]
    crops = crop_around(x, centroids(x), data.spec()["clip"]["crop"])
    assert crops.shape == (6, 8, 1, 16, 16) and torch.equal(crops, crops[:, :1].expand_as(crops))


def test_frames_are_cropped_for_the_datas_own_evaluator_only():
    """Catches digit clips cropped for an evaluator that reads whole frames (`--features` other than the data's)."""
    from types import SimpleNamespace

    from gankit.report.video import evaluator_frames

    data = moving_digits(3, frames=4, seed=1)
    x = data.take(torch.arange(3))[0]
    gen = SimpleNamespace(spec=data.spec())
    own = evaluator_frames(SimpleNamespace(gen=gen, knows_the_data=True), x)
    assert torch.equal(own, crop_around(x, centroids(x), 16).flatten(0, 1))
    other = evaluator_frames(SimpleNamespace(gen=gen, knows_the_data=False), x)
    assert torch.equal(other, x.flatten(0, 1))


def test_speed_from_the_config_sets_how_far_objects_move_per_frame():
    data = load_dataset(DataConfig(name="moving-shapes", n=32, frames=4, resolution=16, speed=(0.1, 0.1)))
    step = (data.info["paths"][:, 1:] - data.info["paths"][:, :-1]).norm(dim=2)  # less only in a step that bounces
    assert step.max() <= 0.1 + 1e-5 and step.median() == pytest.approx(0.1, abs=1e-5)


def test_labels_of_a_shape_subset_index_its_class_names():
    data = moving_shapes(24, frames=2, resolution=16, shapes=["star", "ring"], seed=0)
    assert data.class_names == ["star", "ring"] and set(data.y.tolist()) == {0, 1}
    assert [data.class_names[i] for i in data.y] == [SHAPES[i] for i in data.attributes["shape"]]


def test_digit_paths_and_labels_say_where_each_digit_is_and_which_it_is():
    data = moving_digits(40, frames=4, seed=2)
    x = data.take(torch.arange(40))[0]
    crops = crop_around(x, data.info["paths"], data.spec()["clip"]["crop"])  # at the path, not a measured centroid
    assert torch.equal(crops, crops[:, :1].expand_as(crops))  # the same digit pixels in every frame
    seen = load_evaluator("digits").classify(crops[:, 0], "digit")
    assert (seen == data.y).float().mean() > 0.8


@pytest.mark.parametrize("override, fragment", [("data.speed=[0.1,0.01]", "data.speed"),
                                                ("data.frames=2", "data.frames"),
                                                ("mocogan.g_start=32", "mocogan.g_start"),
                                                ("mocogan.g_start=16 data.resolution=16", "mocogan.g_start")])
def test_bad_clip_knobs_are_one_line_exit_2(cli, tmp_path, override, fragment):
    code, _, err = cli("train", "moving-shapes-video", *override.split(), *RUN, "--out", str(tmp_path / "r"),
                       "--no-progress")
    assert code == 2 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_mocogan_on_still_images_says_what_data_it_needs(cli, tmp_path):
    code, _, err = cli("train", "shapes-dcgan", "variant=mocogan", "train.steps=1", "--out", str(tmp_path / "r"))
    assert code == 2 and "moving-shapes" in err


def test_stabilisers_mocogan_does_not_apply_are_refused(cli, tmp_path):
    code, _, err = cli("train", "moving-shapes-video", *RUN, "loss.gp_weight=10", "--out", str(tmp_path / "r"))
    assert code == 2 and "loss.gp_weight" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ writers


def _fake_clips(n: int = 3, t: int = 5) -> torch.Tensor:
    return torch.rand(n, t, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_gif_grid_plays_every_frame_and_says_it_is_generated(tmp_path):
    kind = kind_of("clip")
    kind.write(tmp_path / "clips.gif", _fake_clips(), {"kind": "clip"}, meta={"run": "r", "seed": 7})
    with Image.open(tmp_path / "clips.gif") as gif:
        assert gif.n_frames == 5
    fields = read_provenance(tmp_path / "clips.gif")
    assert fields is not None and fields["gankit:seed"] == "7"


def test_folder_output_is_one_gif_per_clip_each_labelled(tmp_path):
    kind_of("clip").write(f"{tmp_path}/out/", _fake_clips(4), {"kind": "clip"}, meta={"run": "r"})
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.gif" for i in range(4)]
    for i, f in enumerate(files):
        with Image.open(f) as gif:
            assert gif.n_frames == 5 and gif.size == (64, 64)  # one 8x8 clip, scaled 8x
        assert read_provenance(f)["gankit:index"] == str(i)


def test_png_has_one_row_per_clip_and_one_column_per_frame(tmp_path):
    kind_of("clip").write(tmp_path / "c.png", _fake_clips(3, 5), {"kind": "clip"}, meta={})
    with Image.open(tmp_path / "c.png") as png:
        assert png.size == (8 * (5 * 9 + 1), 8 * (3 * 9 + 1))  # 1-pixel padding, scaled 8x


# ------------------------------------------------------------------------------------------------ nets


def test_generator_and_discriminators_shapes():
    g = VideoGenerator(16, 3, 32, content_dim=8, motion_dim=4, noise_dim=2, width=8)
    assert g.z_dim == 8 + 4 + 16 * 2
    x = g(torch.randn(2, g.z_dim))
    assert x.shape == (2, 16, 3, 32, 32) and x.abs().max() <= 1
    assert VideoDiscriminator(16, 3, 32, width=8)(x).shape == (2,)
    assert VideoDiscriminator(8, 1, 16, width=8)(torch.randn(3, 8, 1, 16, 16)).shape == (3,)
    framewise = VideoGenerator(16, 3, 32, content_dim=8, motion_dim=4, width=8, framewise=True)
    assert framewise.z_dim == 16 * 12 and framewise(torch.randn(2, framewise.z_dim)).shape == (2, 16, 3, 32, 32)


def test_g_start_sets_the_side_of_the_frame_generators_first_map():
    """mocogan.g_start reaches the image generator: its first layer maps z to a g_start × g_start map, and the
    stages after it still end at the data's resolution."""
    for start in (4, 8):
        variant, batch = _setup(f"mocogan.g_start={start}")
        first = variant.G.image.net[0]
        with torch.no_grad():
            clips = variant.G(variant.noise(2))
        assert first.kernel_size == (start, start) and first(torch.zeros(1, first.in_channels, 1, 1)).shape[-1] == start
        assert clips.shape[1:] == batch.x.shape[1:]
    with pytest.raises(ValueError, match="first map"):
        VideoGenerator(16, 3, 16, width=8, start=16)
    variant = _setup("mocogan.coords=true")[0]  # the key reaches the frame generator's upsampling convs
    widened = [m.in_channels for m in variant.G.image.net if isinstance(m, torch.nn.ConvTranspose2d)][1:]
    assert widened == [c + 2 for c in [m.in_channels for m in _setup()[0].G.image.net
                                       if isinstance(m, torch.nn.ConvTranspose2d)][1:]]


@pytest.mark.parametrize("residual", [False, True])
def test_motion_moves_the_frames_and_content_is_shared(residual):
    """Catches a zeroed or ignored motion path (every frame of a clip would be the same picture) and a content code
    not shared across frames (two clips with the same motion but different content would not differ), with DCGAN's
    and BigGAN's frame generators."""
    torch.manual_seed(0)
    g = VideoGenerator(8, 3, 32, content_dim=8, motion_dim=8, noise_dim=4, width=8, residual=residual).eval()
    z = torch.randn(4, g.z_dim)
    with torch.no_grad():
        x = g(z)
        latents = g.latents(z)
    # frames differ across time about as much as clips differ from each other (DCGAN's init makes both tiny)
    assert (x[:, 1:] - x[:, :-1]).abs().mean() > 0.1 * (x - x.mean(0)).abs().mean()
    assert (latents[:, 1:, 8:] - latents[:, :-1, 8:]).abs().min() > 0  # the motion code changes every frame
    assert torch.equal(latents[:, :, :8], z[:, None, :8].expand(-1, 8, -1))  # the content code is every frame's


def test_biggan_frame_nets_read_the_whole_frame_latent_in_every_block():
    """mocogan.frame_nets=biggan: G's frames come from BigGAN's G whose every conditional batch norm reads the
    frame's latent (catches a zeroed or partial condition), and D_I is BigGAN's D with spectral norm."""
    variant, batch = _setup("mocogan.frame_nets=biggan", "mocogan.content_categories=3")
    G = variant.G
    assert isinstance(G.image, BigGANGenerator) and isinstance(variant.D_image.net, BigGANDiscriminator)
    assert any("parametrizations" in name for name, _ in variant.D_image.named_parameters())
    seen = []
    hooks = [block.bn1.gain.register_forward_hook(lambda m, args, out: seen.append(args[0]))
             for block in G.image.blocks]
    z, code = variant.noise(2), F.one_hot(torch.tensor([0, 2]), 3).float()
    with torch.no_grad():
        clips = G(z, code)
        latents = G.latents(z, code).flatten(0, 1)
    for hook in hooks:
        hook.remove()
    assert clips.shape[1:] == batch.x.shape[1:] and len(seen) == len(G.image.blocks)
    for condition in seen:  # [the frame latent, its own z chunk]
        assert torch.equal(condition[:, :latents.shape[1]], latents)


@pytest.mark.parametrize("framewise", [False, True])
def test_layered_g_colours_each_clip_from_its_content_and_paints_through_the_mask(framewise):
    """mocogan.layered: the colour net reads the content part and the code only (catches motion leaking into the
    colours, which would let them drift within a clip), and every pixel is m·object + (1 − m)·background with m the
    image net's one-channel output in [0, 1] (catches frames not composed from the layers, or the mask inverted)."""
    torch.manual_seed(0)
    g = VideoGenerator(6, 3, 16, content_dim=5, motion_dim=4, noise_dim=2, width=8, framewise=framewise,
                       categories=2, layered=True)  # training mode: batch statistics spread the mask out
    seen = []
    g.colours.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    z, code = torch.randn(3, g.z_dim), F.one_hot(torch.tensor([0, 1, 1]), 2).float()
    with torch.no_grad():
        x, latents = g(z, code), g.latents(z, code)
        content = seen[0].view(3, 6, -1)
        thing, ground = (c[..., None, None] for c in torch.tanh(g.colours(content)).chunk(2, dim=-1))
        mask = 0.5 * (g.image(latents.flatten(0, 1)) + 1).view(3, 6, 1, 16, 16)
    assert x.shape == (3, 6, 3, 16, 16) and mask.std() > 0.01
    assert torch.equal(content, torch.cat([latents[..., :5], code[:, None].expand(-1, 6, -1)], dim=2))
    assert framewise or torch.equal(content, content[:, :1].expand_as(content))  # one colour pair per clip
    assert torch.allclose(x, mask * thing + (1 - mask) * ground, atol=1e-5)


def _sprite_g() -> VideoGenerator:
    torch.manual_seed(0)
    return VideoGenerator(6, 3, 16, content_dim=5, motion_dim=4, noise_dim=2, width=8, categories=2, sprite=True)


def test_sprite_g_moves_one_object_per_clip_by_its_shift_over_the_clips_background():
    """mocogan.sprite with shifts of whole pixels: every frame shows the clip's one object (drawn once, from the
    content part and the code) moved one pixel right and two up, premultiplied by its opacity, over the clip's
    background colour, which shows where the object is not (catches the object redrawn per frame or reading the
    motion, the shift's sign, axis or scale wrong, the opacity inverted or not applied, the background dropped)."""
    g = _sprite_g()
    z, code = torch.randn(3, g.z_dim), F.one_hot(torch.tensor([0, 1, 1]), 2).float()
    seen = []
    g.image.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        g.shift.weight.zero_()  # a half-side is 8 pixels of 16: (1/8, -2/8) is one pixel right, two up
        g.shift.bias.copy_(torch.atanh(torch.tensor([1 / 8, -2 / 8])))
        x, latents = g(z, code), g.latents(z, code)
        calls, content = len(seen), torch.cat([latents[:, 0, :5], code], dim=1)
        drawn, ground = g.image(content), torch.tanh(g.ground(content))[:, :, None, None]
    assert calls == 1 and torch.equal(seen[0], content)  # once per clip, from the content part and the code
    alpha = 0.5 * (drawn[:, 3:] + 1)
    assert alpha.std() > 0.01 and ground.std() > 0.01
    frame = (drawn[:, :3] * alpha + (1 - alpha) * ground)[:, None].expand(-1, 6, -1, -1, -1)
    assert torch.allclose(x[..., :14, 1:], frame[..., 2:, :15], atol=1e-5)  # pixel (r, c) shows (r + 2, c - 1)
    empty = ground[:, None].expand(-1, 6, -1, 2, 16)  # the rows the object left, and the column it has not reached
    assert torch.allclose(x[..., 14:, :], empty, atol=1e-5)
    assert torch.allclose(x[..., 0], ground[:, None, :, 0].expand(-1, 6, -1, 16), atol=1e-5)


def test_sprite_g_shifts_each_frame_by_its_own_motion_code():
    """The shift head reads z_m(t) of each frame (catches it reading the content, or one shift for a clip), and
    frames_at draws frame t as the whole clip does."""
    g = _sprite_g()
    z, code = torch.randn(3, g.z_dim), F.one_hot(torch.tensor([0, 1, 1]), 2).float()
    seen = []
    g.shift.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        x, latents = g(z, code), g.latents(z, code)
        t = torch.tensor([5, 0, 3])
        one = g.frames_at(z, code, t)
    assert torch.equal(seen[0], latents[:, :, 7:]) and seen[0].std(dim=1).min() > 0  # the motion part, per frame
    assert torch.allclose(one, x[torch.arange(3), t], atol=1e-6)
    assert not torch.allclose(x[:, 0], x[:, 5], atol=1e-3)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_sprite_g_blends_a_half_pixel_shift_from_premultiplied_layers_in_float32(precision):
    """A hard-edged object (colour inside, opacity 0 and colour -1 outside) moved half a pixel right: its left and
    right edge columns show half object, half background; the same under bf16 autocast (catches colour resampled
    without its opacity, nearest-pixel sampling, and positions computed in bf16, off by up to 0.1 at 16 px)."""
    g = _sprite_g()
    colour = torch.tensor([1.0, -0.5, 0.25])
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[4:12, 4:12] = True
    sprite = torch.cat([torch.where(inside, colour[:, None, None], -1.0), torch.where(inside, 1.0, -1.0)[None]])
    g.image.register_forward_hook(lambda m, args, out: sprite.expand(len(out), -1, -1, -1).to(out.dtype))
    z, code = torch.randn(2, g.z_dim), F.one_hot(torch.tensor([0, 1]), 2).float()
    with torch.no_grad():
        g.shift.weight.zero_()
        g.shift.bias.copy_(torch.atanh(torch.tensor([1 / 16, 0.0])))  # half a pixel of 16: 1/16 of a half-side
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            x = g(z, code)
        ground = torch.tanh(g.ground(torch.cat([g.latents(z, code)[:, 0, :5], code], dim=1)))[:, None, :, None, None]
    cover = inside.float()
    cover[4:12, 4], cover[4:12, 12] = 0.5, 0.5  # the edge columns: half of each neighbour
    assert x.dtype == torch.float32
    assert torch.allclose(x, cover * colour[:, None, None] + (1 - cover) * ground, atol=1e-5)


@pytest.mark.parametrize("other", ["mocogan.framewise=true", "mocogan.layered=true", "mocogan.coords=true",
                                   "mocogan.frame_nets=biggan"])
def test_sprite_g_refuses_the_frame_options_it_does_not_draw_with(cli, tmp_path, other):
    code, _, err = cli("train", "moving-shapes-video", *RUN, "mocogan.sprite=true", other, "--out",
                       str(tmp_path / "r"), "--no-progress")
    assert code == 2 and "mocogan.sprite=false" in err and other in err and "Traceback" not in err
    assert not (tmp_path / "r" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------ wiring


def _first_frame(variant):
    """Replace the random frame picks by frame 3 (D_I) and frames 1 and 6 (D_pair), so the test can recompute the
    Ds' inputs."""
    variant.pick_frames = lambda clips: clips[:, 3]
    variant.pick_pairs = lambda clips: torch.cat([clips[:, 1], clips[:, 6]], dim=1)


def _pairs(clips):
    return torch.cat([clips[:, 1], clips[:, 6]], dim=1)


def _frame_nets(nets: str, variant) -> None:
    """BigGAN's D_I in eval mode: it has no batch norm, and spectral norm then holds its estimate between calls, so
    a test can recompute D_I's logits exactly."""
    if nets == "biggan":
        variant.D_image.eval()


@pytest.mark.parametrize("nets", list(FRAME_NETS))
def test_d_loss_is_the_game_on_real_then_fake_for_every_discriminator(nets):
    """Catches swapped real/fake logits, a dropped or sign-flipped D_I, D_V or D_pair term, and their weights
    ignored, with each frame generator (DCGAN's, BigGAN's, the sprite)."""
    variant, batch = _setup("mocogan.video_weight=0.7", "mocogan.pair_weight=0.3", FRAME_NETS[nets])
    _first_frame(variant)
    _frame_nets(nets, variant)
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0].detach()
    image = losses.d_bce(variant.D_image(batch.x[:, 3]), variant.D_image(fake[:, 3]))
    video = losses.d_bce(variant.D_video(batch.x), variant.D_video(fake))
    pair = losses.d_bce(variant.D_pair(_pairs(batch.x)), variant.D_pair(_pairs(fake)))
    assert loss.item() == pytest.approx((image + 0.7 * video + 0.3 * pair).item(), rel=1e-5)
    assert scalars["d_image_loss"].item() == pytest.approx(image.item(), rel=1e-5)
    assert scalars["d_video_loss"].item() == pytest.approx(video.item(), rel=1e-5)
    assert scalars["d_pair_loss"].item() == pytest.approx(pair.item(), rel=1e-5)


def test_pairs_are_two_frames_of_the_same_clip():
    variant, _ = _setup("mocogan.pair_weight=1")
    clips = torch.arange(8).float().view(8, 1, 1, 1, 1).expand(8, 16, 1, 2, 2) + \
        torch.arange(16).float().view(1, 16, 1, 1, 1) * 100  # value = clip + 100·frame
    pairs = variant.pick_pairs(clips)
    assert pairs.shape == (8, 2, 2, 2) and torch.equal(pairs % 100, torch.arange(8).float().view(8, 1, 1, 1).expand(8, 2, 2, 2))
    assert variant.D_pair is not None and any(m is variant.D_pair for m in variant.groups["D"].modules)


def test_one_d_step_raises_every_d_on_reals_and_lowers_it_on_fakes():
    variant, batch = _setup("mocogan.pair_weight=1")
    ctx = Context()
    loss, _ = variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0].detach()

    def scores():
        with torch.no_grad():
            return [d(x).mean().item() for d, x in ((variant.D_image, batch.x[:, 3]), (variant.D_image, fake[:, 3]),
                                                    (variant.D_video, batch.x), (variant.D_video, fake),
                                                    (variant.D_pair, _pairs(batch.x)), (variant.D_pair, _pairs(fake)))]
    before = scores()
    optimizer = torch.optim.SGD(variant.groups["D"].parameters(), lr=0.005)
    loss.backward()
    optimizer.step()
    after = scores()
    assert after[0] > before[0] and after[1] < before[1], "D_I"
    assert after[2] > before[2] and after[3] < before[3], "D_V"
    assert after[4] > before[4] and after[5] < before[5], "D_pair"


@pytest.mark.parametrize("nets", list(FRAME_NETS))
def test_g_loss_is_the_game_on_every_discriminator_and_reaches_the_motion_rnn(nets):
    """Catches a dropped or sign-flipped D_I, D_V or D_pair term in G's loss, and a motion path (or, for the sprite,
    the object's net or the background's) cut off from the gradient, with each frame generator (DCGAN's, BigGAN's,
    the sprite)."""
    variant, batch = _setup("mocogan.video_weight=0.7", "mocogan.pair_weight=0.3", FRAME_NETS[nets])
    _first_frame(variant)
    _frame_nets(nets, variant)
    ctx = Context()
    variant.loss("D", batch, ctx)
    fake = ctx.values[FAKE][0]
    loss, _ = variant.loss("G", batch, ctx)
    expected = losses.g_non_saturating(variant.D_image(fake[:, 3])) + \
        0.7 * losses.g_non_saturating(variant.D_video(fake)) + 0.3 * losses.g_non_saturating(variant.D_pair(_pairs(fake)))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert variant.G.rnn.weight_ih.grad.abs().sum() > 0
    for part in ("image", "ground", "shift") if nets == "sprite" else ():
        assert all(p.grad.abs().sum() > 0 for p in getattr(variant.G, part).parameters() if p.ndim > 1)


def test_one_g_step_raises_both_ds_on_the_fakes():
    variant, batch = _setup()
    ctx = Context()
    variant.loss("D", batch, ctx)
    loss, _ = variant.loss("G", batch, ctx)
    z = variant.noise(8, generator=torch.Generator().manual_seed(1))
    variant.eval()  # G's batch norm with running statistics: the same G for the before and after pictures

    def scores():
        with torch.no_grad():
            x = variant.G(z)
            return variant.D_image(x.flatten(0, 1)).mean().item(), variant.D_video(x).mean().item()
    before = scores()
    variant.train()
    torch.optim.SGD(variant.groups["G"].parameters(), lr=0.05).zero_grad()
    loss.backward()
    for p in variant.groups["G"].parameters():
        p.data -= 0.05 * p.grad
    variant.eval()
    after = scores()
    assert after[0] > before[0] and after[1] > before[1]


def test_framewise_baseline_has_no_video_d_and_independent_frames():
    variant, batch = _setup("mocogan.framewise=true", "mocogan.pair_weight=1")
    assert variant.D_video is None and variant.D_pair is None and variant.G.rnn is None and list(variant.groups["D"].modules) == [variant.D_image]
    loss, scalars = variant.loss("D", batch, Context())
    assert "d_video_loss" not in scalars and torch.isfinite(loss)


def _code_setup(*overrides: str):
    """A tiny MoCoGAN with a 3-valued content code; D_I judges frame 3 only, so its inputs can be recomputed."""
    variant, batch = _setup("mocogan.content_categories=3", "mocogan.info_weight=0.4", "mocogan.image_frames=1",
                            *overrides)
    variant.pick_frames = lambda clips: clips[:, 3]
    return variant, batch


def test_content_code_term_is_q_reading_the_fakes_code_in_both_steps():
    """Catches the code's term dropped from D's or G's loss, its sign flipped, its weight ignored, and Q trained on
    real frames instead of the fakes (whose code is known)."""
    variant, batch = _code_setup("mocogan.video_weight=0")
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake, code = ctx.values[FAKE][:2]
    assert code.shape == (8,) and int(code.max()) < 3
    (real_logits, _), (fake_logits, q) = variant.D_image(batch.x[:, 3]), variant.D_image(fake.detach()[:, 3])
    info = torch.nn.functional.cross_entropy(q, code)
    assert loss.item() == pytest.approx((losses.d_bce(real_logits, fake_logits) + 0.4 * info).item(), rel=1e-5)
    assert scalars["info_loss"].item() == pytest.approx(info.item(), rel=1e-5)
    g_loss, g_scalars = variant.loss("G", batch, ctx)
    g_logits, g_q = variant.D_image(fake[:, 3])
    expected = losses.g_non_saturating(g_logits) + 0.4 * torch.nn.functional.cross_entropy(g_q, code)
    assert g_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    g_loss.backward()  # the code reaches G: its input weights for the code's columns get a gradient
    assert variant.G.image.net[0].weight.grad[8:11].abs().sum() > 0


def test_q_reads_each_picked_frame_against_its_own_clips_code():
    """With several frames per clip, every picked frame is scored against the code of the clip it came from
    (catches codes repeated in the wrong order)."""
    variant, _ = _setup("mocogan.content_categories=3", "mocogan.image_frames=4")
    clips = torch.arange(6).float().view(6, 1, 1, 1, 1).expand(6, 16, 3, 32, 32)  # every pixel = the clip's index
    code = torch.tensor([2, 0, 1, 1, 2, 0])

    class Reader(torch.nn.Module):  # a Q that knows each frame's clip from its pixels
        def forward(self, frames):
            return frames.new_zeros(len(frames)), 50.0 * torch.nn.functional.one_hot(code[frames[:, 0, 0, 0].long()], 3)
    variant.D_image = Reader()
    frames, frame_code = variant.frames_of(clips, code)
    _, q = variant.judge(frames, frame_code)
    assert variant.read_code(q, frame_code).item() < 1e-6


def test_content_code_holds_for_the_clip_and_sampling_fixes_it():
    """The code changes what G draws (catches a code that never reaches G) and is the same input in every frame;
    `codes={"c0": k}` fixes it, the rest of the draw unchanged."""
    variant, _ = _setup("mocogan.content_categories=3")
    variant.eval()
    z = variant.noise(2, generator=torch.Generator().manual_seed(1))
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()
    latents = variant.G.latents(z, one_hot)
    assert torch.equal(latents[:, :, 8:11], one_hot[:, None].expand(-1, 16, -1))
    with torch.no_grad():
        assert not torch.equal(variant.G(z, one_hot), variant.G(z, one_hot.flip(0)))  # bit-equal if unused
        first, again, other = (variant.generate(gankit.variants.Request(2, codes=codes,
                                                                        generator=torch.Generator().manual_seed(4)))
                               for codes in ({"c0": 1}, {"c0": 1}, {"c0": 2}))
    assert torch.equal(first, again) and not torch.equal(first, other)
    with pytest.raises(ValueError, match="0-2"):
        variant.generate(gankit.variants.Request(1, codes={"c0": 3}))
    plain, _ = _setup()
    with pytest.raises(ValueError, match="codes"):
        plain.generate(gankit.variants.Request(1, codes={"c0": 0}))


def test_real_frames_train_q_to_cluster_and_to_read_a_clip_alike():
    """D's loss adds the clustering term on Q's readings of the real frames and the clip term, each weighted (catches
    either dropped, unweighted, or taken on the fakes); G's loss has neither (G cannot change real frames)."""
    variant, batch = _code_setup("mocogan.video_weight=0", "mocogan.image_frames=2", "mocogan.real_weight=0.3",
                                 "mocogan.clip_weight=0.2")
    variant.pick_frames = lambda clips: clips[:, [3, 5]].flatten(0, 1)
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake, code = ctx.values[FAKE][:2]
    (real_logits, q_real), (fake_logits, q_fake) = (variant.D_image(x[:, [3, 5]].flatten(0, 1))
                                                    for x in (batch.x, fake.detach()))
    cluster = losses.cluster_entropy(q_real)
    target = torch.softmax(q_real, 1).view(8, 2, 3).mean(1, keepdim=True).expand(-1, 2, -1).reshape(16, 3)
    clip = losses.soft_cross_entropy(target, q_real)
    info = torch.nn.functional.cross_entropy(q_fake, code.repeat_interleave(2))
    expected = losses.d_bce(real_logits, fake_logits) + 0.4 * info + 0.3 * cluster + 0.2 * clip
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["q_real_cluster"].item() == pytest.approx(cluster.item(), rel=1e-5)
    assert scalars["q_real_clip"].item() == pytest.approx(clip.item(), rel=1e-5)
    g_loss, _ = variant.loss("G", batch, ctx)
    g_logits, g_q = variant.D_image(fake[:, [3, 5]].flatten(0, 1))
    g_info = torch.nn.functional.cross_entropy(g_q, code.repeat_interleave(2))
    g_expected = losses.g_non_saturating(g_logits) + 0.4 * g_info
    assert g_loss.item() == pytest.approx(g_expected.item(), rel=1e-5)


def test_q_that_learns_from_real_frames_only_leaves_the_fakes_code_to_g():
    """mocogan.q_fakes=false: D's loss has the real-frame terms but not the fakes' code (catches the flag ignored);
    G's loss still has it."""
    variant, batch = _code_setup("mocogan.video_weight=0", "mocogan.real_weight=0.3", "mocogan.q_fakes=false")
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake, code = ctx.values[FAKE][:2]
    (real_logits, q_real), (fake_logits, _) = (variant.D_image(x[:, 3]) for x in (batch.x, fake.detach()))
    expected = losses.d_bce(real_logits, fake_logits) + 0.3 * losses.cluster_entropy(q_real)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and scalars["info_loss"] > 1e-3
    g_loss, _ = variant.loss("G", batch, ctx)
    g_logits, g_q = variant.D_image(fake[:, 3])
    g_expected = losses.g_non_saturating(g_logits) + 0.4 * torch.nn.functional.cross_entropy(g_q, code)
    assert g_loss.item() == pytest.approx(g_expected.item(), rel=1e-5)


@pytest.mark.parametrize("frames", ["dcgan", "sprite"])
def test_labelled_mocogan_draws_the_batchs_classes_and_classifies_real_and_generated_frames(frames):
    """mocogan.labels=classifier: the fakes' code is the real batch's labels (catches random codes), and D's loss has
    ACGAN's two class terms, on real frames against their labels and on the fakes (catches either dropped or the real
    frames scored against other labels); G's has the fakes' term. With either frame generator."""
    variant, batch = _code_setup("mocogan.video_weight=0", "mocogan.content_categories=0", "mocogan.labels=classifier",
                                 FRAME_NETS[frames])
    assert variant.class_names == ["circle", "square"] and "labels" in variant.sampling
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake, code = ctx.values[FAKE][:2]
    assert torch.equal(code, batch.y) and len(set(batch.y.tolist())) == 2
    (real_logits, q_real), (fake_logits, q_fake) = (variant.D_image(x[:, 3]) for x in (batch.x, fake.detach()))
    ce = torch.nn.functional.cross_entropy
    expected = losses.d_bce(real_logits, fake_logits) + 0.4 * ce(q_fake, batch.y) + 0.4 * ce(q_real, batch.y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert scalars["d_class_loss"].item() == pytest.approx(ce(q_real, batch.y).item(), rel=1e-5)
    g_loss, _ = variant.loss("G", batch, ctx)
    g_logits, g_q = variant.D_image(fake[:, 3])
    assert g_loss.item() == pytest.approx((losses.g_non_saturating(g_logits) + 0.4 * ce(g_q, batch.y)).item(), rel=1e-5)


def test_projection_d_judges_each_frame_with_its_clips_label():
    """mocogan.labels=projection: D_I's logit depends on the label (catches a zeroed label path), real frames are
    judged with their clips' labels and fakes with theirs (catches swapped or missing labels), and G's loss is the
    game on the fakes with their labels."""
    variant, batch = _code_setup("mocogan.video_weight=0", "mocogan.content_categories=0", "mocogan.labels=projection")
    ctx = Context()
    loss, scalars = variant.loss("D", batch, ctx)
    fake, code = ctx.values[FAKE][:2]
    assert torch.equal(code, batch.y) and "info_loss" not in scalars
    variant.D_image.embed.weight.data.normal_()  # DCGAN's small init makes the label's share tiny; make it count
    loss, _ = variant.loss("D", batch, ctx := Context())
    fake, code = ctx.values[FAKE][:2]
    real_logits, fake_logits = variant.D_image(batch.x[:, 3], batch.y), variant.D_image(fake.detach()[:, 3], code)
    assert not torch.allclose(real_logits, variant.D_image(batch.x[:, 3], 1 - batch.y))
    assert loss.item() == pytest.approx(losses.d_bce(real_logits, fake_logits).item(), rel=1e-5)
    g_loss, _ = variant.loss("G", batch, ctx)
    assert g_loss.item() == pytest.approx(losses.g_non_saturating(variant.D_image(fake[:, 3], code)).item(), rel=1e-5)


def test_labelled_video_d_judges_each_clip_with_its_label():
    """mocogan.video_labels: D_V's logit depends on the label (catches a zeroed label path); D's loss judges real
    clips with their labels and fakes with theirs (catches swapped or missing labels), and G's video term does too."""
    variant, batch = _code_setup("mocogan.video_weight=0.6", "mocogan.content_categories=0",
                                 "mocogan.labels=projection", "mocogan.video_labels=true")
    variant.D_image.embed.weight.data.normal_()
    variant.D_video.embed.weight.data.normal_()
    loss, scalars = variant.loss("D", batch, ctx := Context())
    fake, code = ctx.values[FAKE][:2]
    real_video, fake_video = variant.D_video(batch.x, batch.y), variant.D_video(fake.detach(), code)
    assert not torch.allclose(real_video, variant.D_video(batch.x, 1 - batch.y))
    image = losses.d_bce(variant.D_image(batch.x[:, 3], batch.y), variant.D_image(fake.detach()[:, 3], code))
    video = losses.d_bce(real_video, fake_video)
    assert scalars["d_video_loss"].item() == pytest.approx(video.item(), rel=1e-5)
    assert loss.item() == pytest.approx((image + 0.6 * video).item(), rel=1e-5)
    g_loss, scalars = variant.loss("G", batch, ctx)
    expected = losses.g_non_saturating(variant.D_video(fake, code))
    assert scalars["g_video_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("labels", ["none", "projection"])
def test_independent_frames_give_d_i_one_frame_each_of_new_clips(labels):
    """mocogan.independent_frames: D_I's fakes are frame t_i of clip i of as many new clips as real frames judged
    (catches the option ignored, or the frames' codes out of order), D's and G's image terms judge those frames, and
    the G phase reuses them (catches a G term on other frames)."""
    variant, batch = _setup("mocogan.independent_frames=true", "mocogan.image_frames=2", "mocogan.video_weight=0",
                            f"mocogan.labels={labels}")
    variant.pick_frames = lambda clips: clips[:, [3, 5]].flatten(0, 1)  # the real frames D_I judges: 3 and 5
    variant.eval()  # batch norm on running statistics: a frame is the same whichever batch draws it
    judged, judge = [], variant.judge  # what D_I is shown, in order (a young D scores most frames alike)
    variant.judge = lambda frames, code=None: judged.append(frames) or judge(frames, code)
    torch.manual_seed(3)
    loss, _ = variant.loss("D", batch, ctx := Context())
    fake, code, images, image_code = ctx.values[FAKE]
    assert torch.equal(judged[1], images)
    torch.manual_seed(3)  # replay the draws: the clips' latents, then the frames' times and the new clips' latents
    variant.noise(8)
    t, z = torch.randint(16, (16,)), variant.noise(16)
    expected_code = None if code is None else code.repeat_interleave(2)
    assert (image_code is None) == (code is None) and (code is None or torch.equal(image_code, expected_code))
    assert torch.allclose(images, variant.G(z, variant.one_hot(expected_code))[torch.arange(16), t], atol=1e-6)
    real_code = None if code is None else batch.y.repeat_interleave(2)
    real = batch.x[:, [3, 5]].flatten(0, 1)
    assert loss.item() == pytest.approx(losses.d_bce(judge(real, real_code)[0],
                                                     judge(images.detach(), image_code)[0]).item(), rel=1e-5)
    g_loss, _ = variant.loss("G", batch, ctx)
    assert judged[-1] is images
    expected = losses.g_non_saturating(judge(images, image_code)[0])
    assert g_loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_video_d_joins_the_game_at_video_start():
    """mocogan.video_start=5: before step 5 D's and G's losses are D_I's game alone and D_V gets no gradient; from
    step 5 on, D_V's terms are in (catches the start ignored, or off by one)."""
    variant, batch = _setup("mocogan.video_start=5")
    _first_frame(variant)
    for step, joined in ((4, False), (5, True)):
        variant.zero_grad(set_to_none=True)
        loss, scalars = variant.loss("D", batch, ctx := Context(step=step))
        fake = ctx.values[FAKE][0].detach()
        image = losses.d_bce(variant.D_image(batch.x[:, 3]), variant.D_image(fake[:, 3]))
        video = losses.d_bce(variant.D_video(batch.x), variant.D_video(fake)) if joined else 0
        assert ("d_video_loss" in scalars) == joined
        assert loss.item() == pytest.approx((image + video).item(), rel=1e-5)
        g_loss, g_scalars = variant.loss("G", batch, ctx)
        assert ("g_video_loss" in g_scalars) == joined
        (loss + g_loss).backward()
        assert all((p.grad is not None) == joined for p in variant.D_video.parameters())


def test_labelled_mocogan_samples_the_classes_asked_for():
    variant, _ = _setup("mocogan.labels=classifier")
    variant.eval()
    labels = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0])
    request = variant.prepare(gankit.variants.Request(12, labels=labels, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(request.cond, torch.nn.functional.one_hot(labels, 2).float())
    grid = variant.progress_request(6, torch.Generator())
    assert grid.labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_framewise_baseline_keeps_the_clips_label_in_every_frame():
    """The labelled frame-wise baseline: frames are independent draws, all asked for the clip's class."""
    variant, _ = _setup("mocogan.framewise=true", "mocogan.labels=classifier")
    code = torch.nn.functional.one_hot(torch.tensor([1, 0]), 2).float()
    z = variant.noise(2, generator=torch.Generator().manual_seed(0))
    latents = variant.G.latents(z, code)
    assert torch.equal(latents[..., -2:], code[:, None].expand(-1, 16, -1))
    assert torch.equal(latents[..., :-2], z.view(2, 16, -1))


def test_class_accuracy_of_clips_judges_every_frame_against_its_clips_class():
    """A 'generator' that returns real clips of the class asked for scores as the evaluator reads real frames;
    one that ignores the class asked for scores near chance."""
    from types import SimpleNamespace

    from gankit.report.video import clip_class_accuracy

    real = moving_shapes(80, frames=16, seed=5, shapes=["circle", "square"],
                         difficulty=Difficulty((0.35, 0.35), 1.0, 0.0, 0.0, 0.0, ("dark",)))
    by_class = {k: real.x[real.y == k].float() / 127.5 - 1 for k in (0, 1)}

    def run(obey: bool):
        def sample(n, seed, labels):
            g = torch.Generator().manual_seed(seed)
            drawn = [k if obey else int(torch.randint(2, (), generator=g)) for k in labels.tolist()]
            return torch.stack([by_class[k][int(torch.randint(len(by_class[k]), (), generator=g))] for k in drawn])
        gen = SimpleNamespace(class_names=["circle", "square"], sample=sample, spec={"evaluator": {"label": "shape"}})
        return SimpleNamespace(gen=gen, seed=0, evaluator=load_evaluator("shapes"), as_saved=lambda x: x,
                               knows_the_data=True)
    assert clip_class_accuracy(run(True)) > 0.9
    assert 0.3 < clip_class_accuracy(run(False)) < 0.7


def test_clip_term_pulls_each_frames_reading_toward_its_own_clips_mean_reading():
    """The target is the mean reading of the same clip's judged frames, held fixed: the gradient on each frame's
    logits is (its reading − the target) / rows (catches a target mixing clips or letting gradient through)."""
    variant, _ = _setup("mocogan.content_categories=3", "mocogan.image_frames=2", "mocogan.clip_weight=1")
    q = torch.tensor([[4.0, 0, 0], [0, 4, 0], [0, 0, 4], [0, 0, 4], [1, 2, 3], [3, 2, 1]], requires_grad=True)
    loss, scalars = variant.real_code_terms(q)  # three clips of two frames each, clip-major
    p = torch.softmax(q.detach(), 1)
    target = p.view(3, 2, 3).mean(1).repeat_interleave(2, 0)
    assert loss.item() == pytest.approx(-(target * torch.log_softmax(q.detach(), 1)).sum(1).mean().item(), rel=1e-6)
    loss.backward()
    assert torch.allclose(q.grad, (p - target) / 6, atol=1e-6)
    assert torch.allclose(q.grad[2:4], torch.zeros(2, 3), atol=1e-7)  # a clip read alike is left as it is
    assert set(scalars) == {"q_real_clip"}


@pytest.mark.parametrize("override, fragment", [("mocogan.content_categories=1", "content_categories"),
                                                ("mocogan.real_weight=1", "content_categories"),
                                                ("mocogan.content_categories=2 mocogan.clip_weight=1 "
                                                 "mocogan.image_frames=1", "image_frames"),
                                                ("mocogan.content_categories=2 mocogan.q_fakes=false", "q_fakes"),
                                                ("mocogan.labels=classifier mocogan.content_categories=2", "labels"),
                                                ("mocogan.labels=yes", "mocogan.labels"),
                                                ("mocogan.frame_nets=biggan mocogan.g_start=8", "g_start"),
                                                ("mocogan.frame_nets=biggan mocogan.minibatch_std=true",
                                                 "minibatch_std"),
                                                ("mocogan.frame_nets=biggan mocogan.coords=true", "coords"),
                                                ("mocogan.video_labels=true", "video_labels"),
                                                ("mocogan.labels=projection mocogan.video_weight=0 "
                                                 "mocogan.video_labels=true", "no D_V")])
def test_mocogan_settings_that_cannot_work_are_exit_2(cli, tmp_path, override, fragment):
    code, _, err = cli("train", "moving-shapes-video", *RUN, *override.split(), "--out", str(tmp_path / "r"))
    assert code == 2 and fragment in err and "Traceback" not in err


@pytest.mark.parametrize("mbstd", [True, False])
def test_minibatch_std_lets_both_ds_judge_a_sample_by_the_others(mbstd):
    """With mocogan.minibatch_std, D_I's and D_V's logit for a sample moves when the rest of the batch changes (the
    batch's spread is one of their features); without it (eval-mode batch norm) it does not."""
    variant, batch = _setup(f"mocogan.minibatch_std={str(mbstd).lower()}")
    variant.eval()
    frames = batch.x[:, 0]
    for d, x in ((variant.D_image, frames), (variant.D_video, batch.x)):
        others_still = x.clone()
        others_still[1:] = x[1:2]  # every other sample the same: no spread
        with torch.no_grad():
            moved = (d(x)[0] - d(others_still)[0]).abs().item()
        assert (moved > 0) == mbstd, type(d).__name__  # the same shapes run the same kernels: bit-equal without


@pytest.mark.parametrize("frames", [1, 3])
def test_frame_picks_are_the_processes_rows_of_one_global_draw(frames):
    """Catches frame picks drawn per process (a data-parallel run would then differ from one process)."""
    variant, _ = _setup(f"mocogan.image_frames={frames}")
    clips = torch.arange(8).float().view(8, 1, 1, 1, 1).expand(8, 16, 1, 1, 1) + \
        torch.arange(16).float().view(1, 16, 1, 1, 1) * 100  # value = clip + 100·frame
    torch.manual_seed(5)
    whole = variant.pick_frames(torch.cat([clips, clips])).flatten()
    variant.shard = Shard(1, 2)
    torch.manual_seed(5)
    part = variant.pick_frames(clips).flatten()
    assert len(part) == 8 * frames and torch.equal(part, whole[8 * frames:])
    assert torch.equal(part.view(8, frames) % 100, torch.arange(8)[:, None].expand(8, frames).float())  # own clips


def test_content_codes_are_the_processes_rows_of_one_global_draw():
    """Catches content codes drawn per process (a data-parallel run would then differ from one process)."""
    variant, _ = _setup("mocogan.content_categories=5")
    torch.manual_seed(3)
    whole = variant.draw_code(16)
    variant.shard = Shard(1, 2)
    torch.manual_seed(3)
    assert torch.equal(variant.draw_code(8), whole[8:])


# ------------------------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize("data", ["clips", "flat_clips"])
def test_metrics_separate_real_clips_from_clips_that_change_content(data, request):
    """Real clips keep their content (consistency ~1); clips whose frames come from different clips do not, and
    their ACD is higher; real motion is smooth, a shuffled track is not."""
    evaluator = load_evaluator("shapes")
    x = request.getfixturevalue(data).take(torch.arange(64))[0]
    perm = torch.stack([torch.randperm(64, generator=torch.Generator().manual_seed(t)) for t in range(16)], dim=1)
    shuffled = x[perm, torch.arange(16)]  # frame t of clip i from clip perm[i, t]
    shapes_of = lambda v: evaluator.classify(v.flatten(0, 1), "shape").view(64, 16)  # noqa: E731
    assert consistency(shapes_of(x)) > 0.97 and consistency(shapes_of(shuffled)) < 0.6
    features = lambda v: evaluator.features(v.flatten(0, 1)).view(64, 16, -1)  # noqa: E731
    assert content_distance(features(x)) < 0.7 * content_distance(features(shuffled))
    shares = majority_shares(shapes_of(x), len(evaluator.attributes["shape"]))
    assert shares.sum() == pytest.approx(1) and total_variation(shares, shares) == 0
    assert total_variation(shares, torch.eye(len(shares))[shares.argmax()]) == pytest.approx(1 - shares.max().item())
    assert second_difference(centroids(x)) < 0.5 * second_difference(centroids(shuffled))


# ------------------------------------------------------------------------------------------------ commands and API


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    from gankit.train import Trainer

    run = tmp_path_factory.mktemp("video") / "run"
    Trainer(resolve("moving-shapes-video", RUN)[0], run, progress=False).fit()
    return run


def test_sample_gif_folder_and_api(video_run, cli, tmp_path):
    assert gankit.load(video_run).sample(3, seed=0).shape == (3, 16, 3, 32, 32)
    code, _, err = cli("sample", str(video_run), "-n", "4", "--out", str(tmp_path / "x.gif"))
    assert code == 0 and "4 clips of 16 frames" in err
    with Image.open(tmp_path / "x.gif") as gif:
        assert gif.n_frames == 16
    code, _, _ = cli("sample", str(video_run), "-n", "4", "--out", f"{tmp_path}/d/")
    assert code == 0 and len(list((tmp_path / "d").glob("*.gif"))) == 4
    assert (video_run / "samples" / "step-2.png").is_file()


def test_a_run_whose_video_d_starts_late_saves_and_loads(tmp_path):
    """A saved generator is rebuilt without the run's train section (train.steps at its default, 2,000), so a
    video_start past it must not be refused at load."""
    from gankit.train import Trainer

    run = tmp_path / "run"
    cfg = resolve("moving-shapes-video", [*RUN, "mocogan.labels=projection", "mocogan.video_labels=true",
                                          "mocogan.video_start=5000"])[0]
    Trainer(cfg, run, progress=False).fit()
    assert gankit.load(run).sample(2, seed=0).shape == (2, 16, 3, 32, 32)


def test_labelled_run_samples_a_class_and_eval_reports_its_class_accuracy(tmp_path, cli):
    from gankit.train import Trainer

    run = tmp_path / "run"
    Trainer(resolve("moving-shapes-video", [*RUN, "mocogan.labels=projection"])[0], run, progress=False).fit()
    code, out, err = cli("sample", str(run), "-n", "2", "--class", "square", "--out", str(tmp_path / "sq.npz"))
    assert code == 0, err
    code, out, err = cli("eval", str(run), "--json", "-n", "16")
    result = json.loads(out)
    assert code == 0 and 0 <= result["class_accuracy"] <= 1
    assert result["protocol"]["class_accuracy"]["per_class"] == 100
    code, _, err = cli("sample", str(run), "-n", "2", "--code", "c0=1", "--out", str(tmp_path / "c.npz"))
    assert code == 2 and "Traceback" not in err


def test_eval_reports_the_clip_metrics_with_protocols(video_run, cli):
    code, out, _ = cli("eval", str(video_run), "--json", "-n", "16")
    assert code == 0
    result = json.loads(out)
    keys = {"consistency", "consistency_real", "consistency_color", "acd", "acd_real", "acd_color",
            "motion_smoothness", "motion_smoothness_real", "motion_speed", "frame_fd"}
    assert keys <= result.keys()
    assert {"consistency", "acd", "motion_smoothness", "frame_fd"} <= result["protocol"].keys()
    assert result["consistency_real"] > 0.95 and result["protocol"]["acd"]["clips"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("nets", ["dcgan", "sprite"])
def test_mocogan_learns_frames_like_the_data(nets):
    """A small but real run (400 steps of 8-frame 16×16 clips, 10-25 s): the Fréchet distance of G's frames to real
    frames, in the shapes evaluator's features, falls well below that of the untrained G, with a G that draws every
    frame and with the sprite G. Over four sampler seeds the ratio after 400 steps was 0.23–0.33 with the first, over
    three 0.22–0.28 with the sprite (the first wanders between 0.5 and 0.9 in the first 250 steps, where an earlier
    250-step version of this test failed on one CPU model and passed on another)."""
    from gankit.data import BatchSampler
    from gankit.metrics import FeatureStats

    variant, _ = _setup("data.n=256", "data.resolution=16", "data.frames=8", "mocogan.g_width=16",
                        "mocogan.d_width=16", "mocogan.content_dim=16", "mocogan.motion_dim=8", "train.batch_size=16",
                        "optim.lr_d=0.002", "optim.lr_g=0.002", FRAME_NETS[nets])
    cfg = resolve("moving-shapes-video", ["data.n=256", "data.resolution=16", "data.frames=8"])[0]
    data = load_dataset(cfg.data, 0)
    evaluator = load_evaluator("shapes")
    real = FeatureStats()
    real.update(evaluator.features(data.take(torch.arange(128))[0].flatten(0, 1)))

    def frame_fd() -> float:
        variant.eval()
        with torch.no_grad():
            x = variant.G(variant.noise(128, generator=torch.Generator().manual_seed(1)))
        variant.train()
        fake = FeatureStats()
        fake.update(evaluator.features(x.flatten(0, 1)))
        return fake.frechet_to(real)

    optimizers = {name: torch.optim.Adam(g.parameters(), lr=g.lr, betas=g.betas) for name, g in variant.groups.items()}
    sampler = BatchSampler(data, 16, 0)
    before = frame_fd()
    for _ in range(400):
        batch, ctx = sampler.next(), Context()
        for phase in ("D", "G"):
            optimizers[phase].zero_grad()
            loss, _ = variant.loss(phase, batch, ctx)
            loss.backward()
            optimizers[phase].step()
    assert frame_fd() < 0.6 * before


def test_clip_metrics_read_real_clips_of_the_fixed_subset_and_rounded_generated_clips(video_run):
    """Catches a `*_real` figure (or frame FD's second set) computed on the generated clips, the real subset drawn
    from the eval seed, generated clips measured unrounded, and consistency applied without the data's evaluator."""
    from gankit.report import evaluate
    from gankit.report.video import clip_sets

    run = evaluate.RunEval(gankit.load(video_run), video_run, seed=3, n=16)
    values = {}
    for name in ("consistency", "acd", "motion_smoothness", "frame_fd"):
        values.update(evaluate.RUN_METRICS[name].compute(run)[0])
    clips = clip_sets(run)
    data = load_dataset(run.config.data, run.config.seed)
    rows = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:16]
    assert torch.equal(clips["real"], data.take(rows)[0])
    levels = (clips["generated"] + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    real_centroids = centroids(clips["real"])
    assert values["motion_speed_real"] == pytest.approx(mean_speed(real_centroids).item())
    assert values["motion_smoothness_real"] == pytest.approx(second_difference(real_centroids).item())
    label = run.gen.spec["evaluator"]["label"]
    seen = run.evaluator.classify(clips["real"].flatten(0, 1), label).view(*clips["real"].shape[:2])
    assert values["consistency_real"] == pytest.approx(consistency(seen).item())
    shuffled = evaluate.RunEval(run.gen, video_run, n=16)  # "generated" clips of frames from any real clip
    frames = clips["real"].flatten(0, 1)
    order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(0))
    shuffled.cache["clips"] = {"generated": frames[order].view_as(clips["real"]), "real": clips["real"]}
    mixed, _ = evaluate.RUN_METRICS["consistency"].compute(shuffled)
    assert mixed["consistency"] < 0.9 < mixed["consistency_real"]
    real_mix = majority_shares(seen, len(run.evaluator.attributes[label]))
    one_kind = evaluate.RunEval(run.gen, video_run, n=16)  # every "generated" clip is real clip 0: perfectly consistent
    one_kind.cache["clips"] = {"generated": clips["real"][:1].expand_as(clips["real"]), "real": clips["real"]}
    collapsed, protocol = evaluate.RUN_METRICS["consistency"].compute(one_kind)
    kind = seen[0].mode().values
    assert collapsed["consistency"] == 1 and collapsed["class_mix_tv"] == pytest.approx(1 - real_mix[kind].item())
    assert 0.2 < collapsed["class_mix_tv"] and sum(protocol["consistency"]["class_mix"]["generated"].values()) == 1
    for key in ("acd", "motion_speed"):
        assert values[key] != pytest.approx(values[f"{key}_real"]), key
    assert values["frame_fd"] > 0
    assert not evaluate.RUN_METRICS["consistency"].applies(evaluate.RunEval(run.gen, video_run, features="raw"))
