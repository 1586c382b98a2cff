"""Super-resolution: downscaled pairs, SRResNet / SRGAN wiring, PSNR-Y / SSIM-Y, `gankit upscale`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit import losses
from gankit.data import load_dataset
from gankit.data.pairs import resize
from gankit.metrics.translation import luma, psnr_y, sharpness, ssim_y
from gankit.nets.sr import SRDiscriminator, SRResNet
from gankit.variants import Context, resolve
from gankit.variants.paired import FAKE

TINY = ["data.n=32", "data.resolution=32", "srgan.width=8", "srgan.blocks=2", "train.batch_size=4"]


@pytest.fixture
def setup(pair_setup):
    return lambda *overrides: pair_setup("shapes-srresnet", *TINY, *overrides)


def test_downscale_pairs_are_the_image_and_its_bicubic_reduction():
    cfg = resolve("shapes-srresnet", TINY)[0]
    data = load_dataset(cfg.data, 0)
    assert data.x.shape[1:] == (3, 8, 8) and data.b.shape[1:] == (3, 32, 32)
    assert torch.equal(data.x, resize(data.b, 8))
    assert data.spec()["pair"] == {"transform": "downscale", "paired": True, "shape_b": [3, 32, 32]}


def test_a_resolution_that_the_scale_does_not_divide_is_refused(cli, tmp_path):
    code, _, err = cli("train", "shapes-srresnet", "data.resolution=34", "--out", str(tmp_path / "unused"))
    assert code == 2 and "data.scale" in err
    code, _, err = cli("train", "shapes-srresnet", "data.resolution=8", "--out", str(tmp_path / "run"))  # 2 px
    assert code == 2 and "at least 4 pixels" in err


def test_srresnet_multiplies_the_size_and_d_gives_one_logit_per_image():
    G, D = SRResNet(3, 4, width=8, blocks=2), SRDiscriminator(3, 64, width=8)
    out = G(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3, 64, 64) and D(out).shape == (2,)
    with pytest.raises(ValueError):
        SRResNet(3, 3)


def test_with_the_bicubic_skip_an_untrained_g_is_bicubic_interpolation_and_learns_the_correction():
    torch.manual_seed(0)
    G = SRResNet(3, 4, width=8, blocks=1, bicubic_skip=True)
    x = torch.rand(2, 3, 8, 8) * 1.6 - 0.8
    bicubic = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    assert torch.equal(G(x), bicubic)
    target = torch.zeros(2, 3, 32, 32)
    F.mse_loss(G(x), target).backward()
    assert G.tail.weight.grad.abs().sum() > 0  # the zero-initialised output conv is trained


def test_only_the_mse_phase_runs_before_pretrain_and_it_is_the_pixel_mse(setup):
    variant, batch = setup("srgan.pretrain=5")
    assert [p.name for p in variant.phases if p.active(4)] == ["mse"]
    assert [p.name for p in variant.phases if p.active(5)] == ["D", "G"]
    loss, scalars = variant.loss("mse", batch, Context())
    assert loss.item() == pytest.approx(F.mse_loss(variant.G(batch.x), batch.b).item(), rel=1e-5)


def test_srgan_d_and_g_losses_are_wired_to_the_right_images(setup):
    """Catches real and fake swapped in D, the content term dropped, the adversarial weight lost, G scored on
    another batch's truth, and fakes drawn from anything but G(the low-resolution input)."""
    variant, batch = setup("srgan.pretrain=0", "srgan.adversarial_weight=0.5")
    ctx = Context()
    d_loss, _ = variant.loss("D", batch, ctx)
    _, fake = ctx.values[FAKE]
    assert torch.allclose(fake, variant.G(batch.x))
    assert d_loss.item() == pytest.approx(losses.d_bce(variant.D(batch.b), variant.D(fake.detach())).item(), rel=1e-5)
    other = type(batch)(x=batch.x.flip(0), y=None, b=batch.b.flip(0))
    g_loss, _ = variant.loss("G", other, ctx)
    expected = F.mse_loss(fake, batch.b) + 0.5 * losses.g_non_saturating(variant.D(fake))
    assert g_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    fresh, _ = variant.loss("G", other, Context())  # no D step this iteration: G draws its own fakes of this batch
    fake = variant.G(other.x)
    expected = F.mse_loss(fake, other.b) + 0.5 * losses.g_non_saturating(variant.D(fake))
    assert fresh.item() == pytest.approx(expected.item(), rel=1e-5)


def test_feature_content_uses_the_frozen_evaluator_and_is_not_part_of_the_model(setup):
    variant, batch = setup("srgan.pretrain=0", "srgan.content=features")
    fake = variant.G(batch.x)
    net = variant._evaluator.net
    expected = F.mse_loss(net(variant._evaluator.prepare(fake))[0], net(variant._evaluator.prepare(batch.b))[0])
    assert variant.content_loss(fake, batch.b).item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(k.startswith(("G.", "D.")) for k in variant.state_dict())
    assert not any(p.requires_grad for p in net.parameters())


def _ssim_by_loops(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two 2-D arrays by explicit Gaussian-weighted sums at every valid position (Wang et al. 2004)."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_psnr_y_and_ssim_y_by_hand():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    a, b = luma(x, 2)[0, 0].numpy(), luma(y, 2)[0, 0].numpy()
    assert luma(torch.ones(1, 3, 2, 2))[0, 0, 0, 0].item() == pytest.approx(235.0)
    assert psnr_y(x, y, 2).item() == pytest.approx(10 * math.log10(255**2 / ((a - b) ** 2).mean()), rel=1e-9)
    assert ssim_y(x, y, 2).item() == pytest.approx(_ssim_by_loops(a, b), rel=1e-9)
    assert ssim_y(x, x, 2).item() == pytest.approx(1.0)
    blurred = F.avg_pool2d(x, 3, 1, 1)
    assert sharpness(blurred).item() < sharpness(x).item()
    c = luma(x)[0, 0].double().numpy()  # across and down, each the mean of squared neighbour differences
    by_hand = (np.diff(c, axis=1) ** 2).mean() + (np.diff(c, axis=0) ** 2).mean()
    assert sharpness(x).item() == pytest.approx(by_hand, rel=1e-5)


@pytest.fixture(scope="module")
def tiny_sr(train_tiny):
    return train_tiny("shapes-srresnet", *TINY, "train.steps=3", "srgan.pretrain=2", "train.sample_every=3",
                      "train.checkpoint_every=0", "train.log_every=1")


def test_eval_reports_luminance_psnr_ssim_beside_bicubic(tiny_sr, cli):
    code, out, _ = cli("eval", str(tiny_sr), "--json")
    report = json.loads(out)
    assert code == 0 and "psnr_to_truth" not in report
    for key in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y", "sharpness", "sharpness_truth",
                "sharpness_bicubic"):
        assert key in report
    assert report["protocol"]["super_resolution"]["scale"] == 4
    assert report["sharpness_bicubic"] < report["sharpness_truth"]


def test_upscale_writes_larger_images_and_refuses_same_size_models(tiny_sr, tmp_path, cli):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(src / "x.png")
    code, _, err = cli("upscale", str(tiny_sr), str(src), "--out", str(tmp_path / "out") + "/")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "x.png") as img:
        assert img.size == (32, 32) and img.text["gankit:task"] == "upscale"
    assert "resized" not in err
    Image.fromarray(np.full((32, 40, 3), 200, np.uint8)).save(src / "big.png")  # not the model's input size: said
    code, _, err = cli("upscale", str(tiny_sr), str(src), "--out", str(tmp_path / "out2") + "/")
    assert code == 0 and "big.png (40x32): resized (short side) and centre-cropped to the model's 8x8" in err, err
    code, _, err = cli("sample", str(tiny_sr), "-n", "2", "--out", str(tmp_path / "s.png"))
    assert code == 2 and "upscales images" in err


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_upscaler_exports_as_images_in_images_out(tiny_sr, tmp_path, cli, fmt):
    import gankit

    out = tmp_path / ("sr.pt" if fmt == "torchscript" else "sr.onnx")
    code, _, err = cli("export", str(tiny_sr), "--format", fmt, "--out", str(out))
    assert code == 0 and "inputs (3, 8, 8)" in err and "(3, 32, 32)" in err
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    expected = gankit.load(tiny_sr).sample(inputs=x)
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(x)
    else:
        import onnx
        from onnx.reference import ReferenceEvaluator

        got = torch.from_numpy(ReferenceEvaluator(onnx.load(str(out))).run(None, {"inputs": x.numpy()})[0])
    assert torch.allclose(got, expected, atol=1e-4)


def test_bicubic_baseline_is_rounded_like_the_models_output(tiny_sr):
    import gankit
    from gankit.data import load_truth_pairs
    from gankit.report.compare import round_to_8bit
    from gankit.report.evaluate import RUN_METRICS, RunEval

    run = RunEval(gankit.load(tiny_sr), tiny_sr)
    values, _ = RUN_METRICS["super_resolution"].compute(run)
    truth = load_truth_pairs(run.config.data, run.config.seed)
    rows = torch.arange(len(truth))
    low, high = truth.take(rows)[0], truth.take_b(rows)
    bicubic = round_to_8bit(resize(low, high.shape[-1]))
    assert values["bicubic_psnr_y"] == pytest.approx(float(psnr_y(bicubic, high, 4).mean()), rel=1e-9)
