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
