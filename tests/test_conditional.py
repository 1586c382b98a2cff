"""Class-conditional variants (cGAN with projection or concat D, ACGAN), class sampling, interpolation."""

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.variants import slerp

FAST = ["train.steps=3", "model.width=8", "train.sample_every=0", "train.checkpoint_every=0", "train.log_every=1"]


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cgan") / "run"
    gankit.train(gankit.load_config("digits-dcgan", ["variant=cgan", *FAST]), run, progress=False)
    return run


@pytest.mark.parametrize("overrides", [["variant=cgan", "model.cond=concat"], ["variant=acgan"],
                                       ["variant=cgan", "loss.gp_weight=1", "model.d_batchnorm=false",
                                        "loss.r1_weight=1", "loss.feature_matching=1"]])
def test_conditional_variants_train_and_sample_by_class(tmp_path, overrides):
    gankit.train(gankit.load_config("digits-dcgan", [*overrides, *FAST]), tmp_path / "r", progress=False)
    g = gankit.load(tmp_path / "r")
    assert g.class_names == [str(i) for i in range(10)]
    assert g.sample(5, seed=0, labels="7").shape == (5, 1, 16, 16)
    assert torch.equal(g.sample(5, seed=0, labels=7), g.sample(5, seed=0, labels="7"))


def test_labels_change_the_samples_and_are_validated(cgan_run):
    g = gankit.load(cgan_run)
    assert not torch.equal(g.sample(4, seed=0, labels=1), g.sample(4, seed=0, labels=2))
    assert torch.equal(g.sample(3, seed=1, labels=[0, 1, 2])[1], g.sample(3, seed=1, labels=1)[1])
    with pytest.raises(gankit.UserError, match="unknown class 'ten'"):
        g.sample(2, labels="ten")
    with pytest.raises(gankit.UserError, match="2 classes for 3 samples"):
        g.sample(3, labels=[1, 2])


def test_random_labels_follow_the_seed_when_drawing_from_given_latents(cgan_run):
    """Catches generate(z, seed=...) drawing a conditional model's random labels from the global RNG."""
    g = gankit.load(cgan_run)
    z = g.latents(32, 1)
    torch.manual_seed(0)
    first = g.generate(z, seed=5)
    torch.manual_seed(1)  # the global stream moves on; the seed alone decides the labels
    assert torch.equal(g.generate(z, seed=5), first) and not torch.equal(g.generate(z, seed=6), first)


def test_an_unconditional_model_takes_no_class(tmp_path):
    gankit.train(gankit.load_config("digits-dcgan", FAST), tmp_path / "r", progress=False)
    with pytest.raises(gankit.UserError, match="not class-conditional"):
        gankit.load(tmp_path / "r").sample(2, labels=1)


def test_conditional_needs_labels(tmp_path):
    np.savez(tmp_path / "x.npz", data=np.random.rand(20, 1, 8, 8).astype(np.float32))
    with pytest.raises(gankit.UserError, match="needs labelled data"):
        gankit.train(gankit.load_config("digits-dcgan", ["variant=cgan", "data.name=npz", f"data.path={tmp_path}/x.npz",
                                                         "data.resolution=8", *FAST]), tmp_path / "r", progress=False)


def test_cli_class_grid_class_option_and_npz_labels(cgan_run, cli, tmp_path):
    code, _, err = cli("sample", str(cgan_run), "-n", "30", "--out", str(tmp_path / "grid.png"))
    assert code == 0, err
    # 10 rows (one per class) of 3 digits; 16-pixel digits with 1 pixel of padding, enlarged ×4
    assert Image.open(tmp_path / "grid.png").size == ((3 * 17 + 1) * 4, (10 * 17 + 1) * 4)
    assert cli("sample", str(cgan_run), "-n", "6", "--class", "4", "--out", str(tmp_path / "s.npz"))[0] == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["samples"].shape == (6, 1, 16, 16) and f["labels"].tolist() == [4] * 6


@pytest.mark.parametrize("args, fragment", [
    (["--class", "12"], "unknown class '12'"),
    (["--truncation", "0"], "truncation must be in (0, 1]"),
    (["--truncation", "-1"], "truncation must be in (0, 1]"),
    (["--vary", "c1"], "no latent code 'c1'"),
    (["--code", "c1"], "is not NAME=NUMBER"),
])
def test_cli_bad_sampling_options_exit_2(cgan_run, cli, tmp_path, args, fragment):
    code, out, err = cli("sample", str(cgan_run), "--out", str(tmp_path / "x.png"), *args)
    assert code == 2 and fragment in err and "Traceback" not in out + err


def test_interpolate_grid_and_gif(cgan_run, cli, tmp_path):
    assert cli("interpolate", str(cgan_run), "--steps", "5", "--rows", "2", "--out", str(tmp_path / "i.png"))[0] == 0
    assert Image.open(tmp_path / "i.png").size == ((5 * 17 + 1) * 4, (2 * 17 + 1) * 4)
    assert cli("interpolate", str(cgan_run), "--steps", "4", "--class", "3", "--out", str(tmp_path / "i.gif"))[0] == 0
    gif = Image.open(tmp_path / "i.gif")
    assert gif.n_frames == 4 + 2 and b"generated=true" in gif.info["comment"]  # there and back again
    code, _, err = cli("interpolate", str(cgan_run), "--out", str(tmp_path / "i.jpg"))
    assert code == 2 and "unknown output type" in err


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(6, 32), torch.randn(6, 32)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    unit_a, unit_b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    assert torch.allclose(slerp(unit_a, unit_b, 0.3).norm(dim=1), torch.ones(6), atol=1e-5)
