"""Network shapes for every supported resolution and channel count, and the DCGAN initialisation."""

import pytest
import torch

from gankit.config import ModelConfig
from gankit.errors import UserError
from gankit.nets import DCGANDiscriminator, DCGANGenerator, build_discriminator, build_generator


@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(resolution, channels):
    g, d = DCGANGenerator(16, channels, resolution, width=8), DCGANDiscriminator(channels, resolution, width=8)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, channels, resolution, resolution) and x.abs().max() <= 1
    assert d(x).shape == (3,)


def test_dcgan_64_matches_reference_widths():
    g = DCGANGenerator(100, 3, 64, width=64)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]  # as in the pytorch/examples DCGAN


def test_dcgan_init_statistics():
    g = DCGANGenerator(64, 1, 32, width=32)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert w.mean().abs() < 2e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)


def test_builders_pick_family_from_the_data():
    vec = {"kind": "vector", "shape": [2]}
    img = {"kind": "image", "shape": [1, 16, 16]}
    cfg = ModelConfig(z_dim=4, g_hidden=[8], d_hidden=[8])
    assert build_generator(cfg, vec)(torch.randn(5, 4)).shape == (5, 2)
    assert build_discriminator(cfg, vec)(torch.randn(5, 2)).shape == (5,)
    assert build_generator(cfg, img)(torch.randn(5, 4)).shape == (5, 1, 16, 16)
    mlp = ModelConfig(name="mlp", z_dim=4, g_hidden=[8], d_hidden=[8])
    assert build_generator(mlp, img)(torch.randn(5, 4)).abs().max() <= 1  # tanh for images
    with pytest.raises(UserError, match="needs image data"):
        build_generator(ModelConfig(name="dcgan"), vec)
    with pytest.raises(UserError, match="power-of-two"):
        build_generator(cfg, {"kind": "image", "shape": [1, 24, 24]})


def test_minibatch_std_appends_the_group_std():
    from gankit.nets import MinibatchStd

    x = torch.arange(8.0).reshape(8, 1)  # groups of 4 pair sample i with i+2, i+4, i+6 (stride 2 layout)
    out = MinibatchStd(group_size=4)(x)
    assert out.shape == (8, 2) and torch.equal(out[:, 0], x[:, 0])
    grouped = x.reshape(4, 2, 1)
    expected = grouped.var(dim=0, unbiased=False).add(1e-8).sqrt().flatten()  # one value per group
    assert torch.allclose(out[:, 1], expected.repeat(4))
    same = MinibatchStd()(torch.ones(8, 3, 2, 2))
    assert same[:, 3].abs().max() < 1e-3  # identical samples: std ≈ 0, the collapse signal


def test_coord_channels_append_y_then_x_and_reach_every_upsampling_conv_of_dcgans_g():
    """CoordConv: the two channels are each pixel's row and column in [-1, 1], after the input's own; with
    coords=True every ×2 transposed conv of DCGAN's G sees them (catches swapped, constant or dropped coordinates)."""
    from gankit.nets.blocks import CoordChannels

    x = torch.randn(2, 3, 4, 5)
    out = CoordChannels()(x)
    assert out.shape == (2, 5, 4, 5) and torch.equal(out[:, :3], x)
    assert torch.allclose(out[1, 3], torch.linspace(-1, 1, 4)[:, None].expand(4, 5))  # y: down the rows
    assert torch.allclose(out[0, 4], torch.linspace(-1, 1, 5)[None, :].expand(4, 5))  # x: along the columns
    g = DCGANGenerator(8, 3, 32, width=8, coords=True)
    seen = []
    for m in g.net:
        if isinstance(m, torch.nn.ConvTranspose2d) and m.stride == (2, 2):
            m.register_forward_pre_hook(lambda mod, args: seen.append(args[0][:, -2:].detach().clone()))
    assert g(torch.randn(2, 8)).shape == (2, 3, 32, 32) and len(seen) == 3  # 4 -> 8 -> 16 -> 32
    for grid in seen:
        side = grid.shape[-1]
        assert torch.allclose(grid[0, 1], torch.linspace(-1, 1, side).expand(side, side))
    assert not any(isinstance(m, CoordChannels) for m in DCGANGenerator(8, 3, 32, width=8).modules())


def test_packed_discriminator_scores_groups_of_samples():
    from gankit.nets import Packed

    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.flatten(1).sum(1)

    x = torch.arange(12.0).reshape(6, 1, 2)
    out = Packed(Probe(), pack=3)(x)
    assert seen["x"].shape == (2, 3, 2) and out.shape == (2,)
    assert torch.equal(seen["x"][0], x[:3, 0])  # consecutive samples are stacked along channels


def test_spectral_norm_bounds_every_layer():
    cfg = ModelConfig(name="mlp", d_hidden=[32, 32], spectral_norm=True)
    d = build_discriminator(cfg, {"kind": "vector", "shape": [2]})
    d.train()
    for _ in range(30):  # power iteration converges as D runs
        d(torch.randn(16, 2))
    d.eval()
    for m in d.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.linalg.matrix_norm(m.weight, ord=2).item() == pytest.approx(1.0, rel=0.05)


def test_diffaugment_keeps_shape_and_gradients():
    from gankit.nets.augment import cutout, diff_augment

    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, "color,translation,cutout")
    y.sum().backward()
    assert y.shape == x.shape and x.grad.abs().sum() > 0
    assert diff_augment(x, "") is x
    erased = (cutout(torch.ones(4000, 1, 16, 16)) == 0).float().mean().item()
    assert erased == pytest.approx(0.182, abs=0.01)  # mean area of a half-size square cut by the border


def test_affine_perturbation_is_the_identity_at_zero_and_moves_each_image_its_own_way():
    from gankit.nets.augment import affine

    x = torch.randn(6, 1, 16, 16)
    assert torch.allclose(affine(x, degrees=0, scale=0, shift=0), x, atol=1e-5)
    dot = torch.full((2, 1, 16, 16), -1.0)
    dot[:, :, 7:9, 7:9] = 1.0
    torch.manual_seed(0)
    moved = affine(dot.repeat(20, 1, 1, 1), degrees=0, scale=0, shift=2 / 16)
    centres = [(m[0] > 0).nonzero().float().mean(0) for m in moved]
    offsets = torch.stack(centres) - 7.5
    assert offsets.abs().max() <= 2.01 and offsets.abs().max() > 1.0  # moved, by at most 2 pixels
    assert len({tuple(o.round().tolist()) for o in offsets}) > 3  # per sample, not one shift for the batch
    turned = affine(torch.linspace(-1, 1, 16).expand(1, 1, 16, 16).contiguous(), degrees=90, scale=0, shift=0)
    assert not torch.allclose(turned, torch.linspace(-1, 1, 16).expand(1, 1, 16, 16), atol=0.1)  # it rotates
    assert (turned >= -1 - 1e-6).all() and (turned <= 1 + 1e-6).all()  # the edge fills: no values from outside
