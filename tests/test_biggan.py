"""BigGAN nets: shapes at 16 and 32, conditional BN, spectral norm everywhere, attention placement, the hierarchical
latent, exact resume, truncation, and the presets of the conditional family."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils import parametrize

import gankit
from gankit.config import ModelConfig
from gankit.variants import resolve
from gankit.data import load_dataset
from gankit.data.shapes import SHAPES
from gankit.errors import UserError
from gankit.nets import BigGANDiscriminator, BigGANGenerator, build_biggan, build_generator
from gankit.nets.biggan import ConditionalBatchNorm, upsample2, z_chunks
from gankit.train import Trainer
from gankit.variants import Request, build_variant

TINY = ["variant=cgan", "data.name=shapes", "data.n=64", "data.resolution=16", "model.name=biggan",
        "model.width=8", "model.shared_dim=8", "model.z_dim=12", "model.attention=8", "loss.name=hinge",
        "optim.ema=0.9", "train.batch_size=8", "train.n_critic=2", "train.sample_every=0", "train.log_every=1"]


def _nets(resolution: int, attention: int, classes: int = 4) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    torch.manual_seed(0)
    return (BigGANGenerator(16, classes, 3, resolution, width=8, shared_dim=8, attention=attention),
            BigGANDiscriminator(3, classes, resolution, width=8, attention=attention))


@pytest.mark.parametrize("resolution, attention", [(16, 8), (32, 16), (32, 0)])
def test_shapes_of_g_and_d(resolution, attention):
    G, D = _nets(resolution, attention)
    y = torch.tensor([0, 1, 2, 3, 0])
    x = G(torch.randn(5, 16), y)
    assert x.shape == (5, 3, resolution, resolution) and x.abs().max() <= 1
    assert D(x, y).shape == (5,) and D.features(x).shape == (5, 8 * min(resolution // 8, 4))
    # channels at resolution r are width·min(R/r, 4): the image side has `width`, 4×4 has 4·width
    assert G.linear.out_features == 4 * 8 * 4 * 4 and G.out_conv.in_channels == 8
    assert D.blocks[0].conv1.out_channels == 8


def test_conditional_batch_norm_conditions_on_the_class():
    G, _ = _nets(16, 8)
    G.eval()  # running statistics: each sample is normalised on its own, so only its own class can matter
    z = torch.randn(1, 16).repeat(4, 1)
    x = G(z, torch.arange(4))
    assert all(not torch.allclose(x[0], x[i], atol=1e-4) for i in (1, 2, 3))
    same = G(z[:2], torch.tensor([2, 2]))
    assert torch.allclose(same[0], same[1], atol=1e-6)  # same z, same class: same image
    cbn = ConditionalBatchNorm(3, 5).eval()
    nn.init.normal_(cbn.gain.weight)
    h = torch.randn(1, 3, 4, 4).repeat(2, 1, 1, 1)
    out = cbn(h, torch.randn(2, 5))
    assert not torch.allclose(out[0], out[1])  # the same features, two conditions: two gains and biases


def test_spectral_norm_on_every_conv_and_linear():
    for net in _nets(32, 16):
        layers = [(name, m) for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
        assert len(layers) > 10
        for name, m in layers:
            if name == "shared":  # G's shared class embedding stays plain, as in BigGAN; D's projection is normalised
                assert not parametrize.is_parametrized(m)
                continue
            assert parametrize.is_parametrized(m, "weight"), name
            assert type(m.parametrizations.weight[0]).__name__ == "_SpectralNorm", name


@pytest.mark.parametrize("resolution, attention", [(32, 16), (32, 8), (16, 8)])
def test_attention_sits_at_the_configured_resolution(resolution, attention):
    G, D = _nets(resolution, attention)
    seen = []
    for net in (G, D):
        assert net.attention.gamma.item() == 0  # starts as the identity
        assert all(parametrize.is_parametrized(conv) for conv in (net.attention.theta, net.attention.o))
        net.attention.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[2:])))
    y = torch.arange(2)
    D(G(torch.randn(2, 16), y), y)
    assert seen == [(attention, attention)] * 2
    assert _nets(32, 0)[0].attention is None
    with pytest.raises(UserError, match="model.attention=16: at 16×16"):
        build_biggan(ModelConfig(name="biggan", attention=16), {"kind": "image", "shape": [3, 16, 16]}, 4)


def test_hierarchical_latent_splits_all_of_z():
    assert z_chunks(64, 3) == [16, 16, 16, 16]
    assert z_chunks(10, 3) == [3, 3, 2, 2] and sum(z_chunks(10, 3)) == 10
    with pytest.raises(ValueError, match="at least 4"):
        z_chunks(3, 3)
    G, _ = _nets(32, 16)
    assert G.z_chunks == [4, 4, 4, 4] and G.linear.in_features == 4
    assert [block.bn1.gain.in_features for block in G.blocks] == [8 + 4] * 3  # shared embedding ⊕ own chunk
    G.eval()
    z, y = torch.randn(1, 16), torch.tensor([1])
    base = G(z, y)
    for index in range(16):  # every component of z (truncated or not) reaches the image
        moved = z.clone()
        moved[0, index] += 1
        assert not torch.allclose(G(moved, y), base), index


def test_biggan_is_for_the_label_conditioned_variants_only():
    with pytest.raises(UserError, match="class-conditional"):
        build_generator(ModelConfig(name="biggan"), {"kind": "image", "shape": [3, 32, 32]})
    for variant in ("gan", "infogan"):
        cfg = resolve("shapes-biggan", [f"variant={variant}", "data.n=64"])[0]
        with pytest.raises(UserError, match="use variant=cgan or acgan"):
            build_variant(cfg, load_dataset(cfg.data).spec())


def test_acgan_on_biggan_nets_classifies_instead_of_projecting():
    cfg = resolve("shapes-biggan", [*TINY, "variant=acgan"])[0]
    variant = build_variant(cfg, load_dataset(cfg.data).spec())
    variant.eval()  # spectral norm's power iteration would move the weights between the two D calls below
    assert variant.D.net.embed is None  # no projection: D's realness score ignores the class
    assert isinstance(variant.G, BigGANGenerator) and variant.G.num_classes == 6
    x = variant.generate(Request(5, labels=torch.tensor([0, 1, 2, 3, 5])))
    logits, classes = variant.d_forward(x, None)
    assert logits.shape == (5,) and classes.shape == (5, 6)
    assert torch.equal(logits, variant.D.net(x))  # the realness logit is D(x) alone


def test_two_step_biggan_run_resumes_bit_identically(tmp_path):
    straight, split = tmp_path / "A", tmp_path / "B"
    cfg = resolve("shapes-biggan", [*TINY, "train.steps=2"])[0]
    Trainer(cfg, straight, progress=False).fit()
    Trainer(resolve("shapes-biggan", [*TINY, "train.steps=1"])[0], split, progress=False).fit()
    Trainer(cfg, split, resume=True, progress=False).fit()
    for name in ("checkpoints/step-2/model.safetensors", "model/model.safetensors"):  # G, D, EMA; exported G
        a, b = load_file(str(straight / name)), load_file(str(split / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    g = gankit.load(straight)
    assert g.class_names == ["circle", "square", "triangle", "star", "ring", "cross"]
    assert g.sample(3, seed=0, labels="star").shape == (3, 3, 16, 16)


def test_truncation_reduces_sample_variance(tmp_path):
    Trainer(resolve("shapes-biggan", [*TINY, "train.steps=1"])[0], tmp_path / "r", progress=False).fit()
    g = gankit.load(tmp_path / "r")
    spread = {t: g.sample(200, seed=0, truncation=t, labels=2).var(0).mean().item() for t in (1.0, 0.5, 0.1)}
    assert spread[1.0] > spread[0.5] > spread[0.1]


@pytest.mark.parametrize("preset, variant, model", [("shapes-biggan", "cgan", "biggan"),
                                                    ("shapes32-biggan", "cgan", "biggan"),
                                                    ("shapes-dcgan", "gan", "dcgan"),
                                                    ("digits-cgan", "cgan", "dcgan"),
                                                    ("digits-acgan", "acgan", "dcgan")])
def test_presets_validate_and_build(preset, variant, model):
    cfg = resolve(preset)[0]
    assert (cfg.variant, cfg.model.name) == (variant, model) and cfg.description
    spec = load_dataset(cfg.data.model_copy(update={"n": 64})).spec()
    variant_module = build_variant(cfg, spec)
    assert variant_module.generate(Request(2)).shape == (2, *spec["shape"])


def test_shapes32_preset_trains_on_the_easier_shapes_it_names():
    cfg = resolve("shapes32-biggan")[0]
    data = load_dataset(cfg.data.model_copy(update={"n": 64}))
    assert data.info["difficulty"]["rotation"] == 0 and data.info["difficulty"]["jitter"] == 0
    assert data.class_names == list(SHAPES) and data.x.shape[-1] == 32


def test_eval_of_a_shapes_run_uses_the_shapes_evaluator_for_class_accuracy(tmp_path):
    Trainer(resolve("shapes-biggan", [*TINY, "train.steps=1"])[0], tmp_path / "r", progress=False).fit()
    metrics = gankit.evaluate(tmp_path / "r", n=60)
    assert metrics["protocol"]["class_accuracy"]["classifier"] == "shapes"
    assert metrics["protocol"]["extractor"]["extractor"] == "shapes"
    assert metrics["protocol"]["class_accuracy"]["per_class"] == 100 and 0 <= metrics["class_accuracy"] <= 1


def test_upsample2_is_nearest_neighbour_and_the_skip_conv_commutes_with_it():
    x = torch.randn(3, 5, 4, 6)
    assert torch.equal(upsample2(x), x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    conv = nn.Conv2d(5, 7, 1)
    assert torch.allclose(upsample2(conv(x)), conv(upsample2(x)), atol=1e-6)
