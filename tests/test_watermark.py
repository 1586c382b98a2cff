"""The invisible watermark: embedded by the generator's output stage, found by `gankit watermark`, calibrated on
unmarked images, and still there after JPEG, rescaling and cropping."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.data.base import as_float
from gankit.errors import UserError
from gankit.nets.watermark import Watermark, detect, fingerprint
from gankit.variants import Request

KEY = "correct horse"


@pytest.fixture(scope="module")
def shapes() -> torch.Tensor:
    """64 procedural 32×32 RGB images, as 8-bit files would hold them."""
    return as_float(load_dataset(DataConfig(name="shapes", resolution=32, n=64), 0).x).float()


def as_8bit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    arr = ((image + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return torch.tensor(np.asarray(Image.open(buf)), dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1


def test_marked_images_reach_the_strength_and_unmarked_ones_score_like_noise(shapes):
    stage = Watermark(KEY, 32, 32, strength=8.0)
    marked = as_8bit(stage(shapes))
    assert stage.score(marked).min() > 7.5  # informed embedding lifts every image to the strength
    clean = stage.score(as_8bit(shapes))
    assert clean.abs().mean() < 1.5 and clean.max() < 4  # the decoys calibrate: about N(0, 1)
    assert Watermark("another key", 32, 32, 8.0).score(marked).abs().max() < 4  # a key finds only its own mark
    psnr = 10 * torch.log10(4 / (marked - as_8bit(shapes)).pow(2).mean())
    assert psnr > 28  # invisible at this size: about 31 dB (docs/provenance.md)


def test_the_strength_is_the_score_marked_images_reach():
    """Catches watermark.strength ignored (every mark embedded at the default 8)."""
    images = as_float(load_dataset(DataConfig(name="shapes", resolution=32, n=8), 0).x).float()
    for strength in (4.0, 12.0):
        scores = Watermark(KEY, 32, 32, strength)(images)
        scores = Watermark(KEY, 32, 32, strength).score(scores)
        assert scores.min() > strength - 0.5 and scores.max() < strength + 0.5, strength


def test_a_crop_search_pays_for_the_placements_it_tried():
    """Catches detect() reporting a crop's best score with the p-value of one test (no correction for the
    placements tried): it would call pieces of unmarked images marked far too often."""
    from gankit.nets.watermark import p_value

    piece = torch.zeros(3, 29, 29).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    found = detect(piece, KEY, 32, 32)
    assert found.how.startswith("crop") and found.p_value > p_value(found.score)


def test_the_mark_survives_jpeg_rescaling_and_cropping_and_unmarked_images_stay_unmarked(shapes):
    marked = as_8bit(Watermark(KEY, 32, 32, 8.0)(shapes[:12]))
    attacks = {
        "jpeg 70": lambda x: jpeg(x, 70),
        "resize 0.75": lambda x: F.interpolate(x[None], size=(24, 24), mode="bilinear", antialias=True)[0],
        "crop 0.9": lambda x: x[:, 3:32, 2:31],
    }
    for name, attack in attacks.items():
        found = [detect(attack(x), KEY, 32, 32) for x in marked]
        assert np.mean([f.marked(1e-4) for f in found]) >= 0.75, name
        unmarked = [detect(attack(x), KEY, 32, 32) for x in shapes[12:36]]
        assert not any(f.marked(1e-4) for f in unmarked), name
    crop = detect(marked[0][:, 3:32, 2:31], KEY, 32, 32)
    assert crop.how == "crop at (2, 3)"  # the crop search finds where the piece came from
    assert crop.p_value > detect(marked[0], KEY, 32, 32).p_value  # and pays for the placements it tried


@pytest.fixture(scope="module")
def marked_run(train_tiny):
    return train_tiny("digits-dcgan", "model.width=8", "train.steps=2", "train.sample_every=0",
                      f"watermark.key={KEY}")


def test_every_output_of_a_watermarked_model_carries_the_mark_exports_too(marked_run, tmp_path):
    from gankit.train import load
    from gankit.train.export import export

    gen = load(marked_run)
    stage = Watermark(KEY, 16, 16, 8.0)
    assert stage.score(gen.sample(8, seed=1)).min() > 7.5
    bare = gen.variant.generate(Request(8, z=gen.latents(8, 1)))
    assert stage.score(bare).abs().max() < 4  # the mark comes from the output stage, not from the weights
    assert gen.provenance(marked_run)["watermark"] == fingerprint(KEY)
    traced = torch.jit.load(str(export(gen, "torchscript", tmp_path / "g.pt")))
    assert stage.score(traced(gen.latents(4, 2))).min() > 7.5  # an export keeps its output stage
    copy = load(gen.save_pretrained(tmp_path / "copy"))  # and so does a saved model folder
    assert copy.watermark is not None and stage.score(copy.sample(4, seed=3)).min() > 7.5


def test_refined_samples_and_style_mixing_grids_carry_the_mark_too(marked_run, train_tiny):
    """Catches outputs that leave by another path than sample(): D-refined samples and StyleGAN's mixing grids."""
    from gankit.train import load

    stage = Watermark(KEY, 16, 16, 8.0)
    assert stage.score(load(marked_run).sample(8, seed=1, refine="drs")).min() > 7.5
    style = load(train_tiny("digits-stylegan", "model.width=4", "stylegan.w_dim=8", "stylegan.mapping_depth=2",
                            "train.steps=2", "train.sample_every=0", f"watermark.key={KEY}"))
    grid, _ = style.mixing_grid(1, 2, rows=2)
    assert stage.score(grid).min() > 7.5


def test_shared_summaries_name_the_watermark_but_never_its_key(marked_run, cli):
    from gankit.report.html import render_report

    code, text, _ = cli("info", str(marked_run), "--json")
    assert code == 0 and json.loads(text)["watermark"] == fingerprint(KEY) and KEY not in text
    page = render_report(marked_run)
    assert fingerprint(KEY) in page and KEY not in page


def test_gankit_watermark_exits_0_for_marked_1_for_unmarked_2_for_bad_input(marked_run, train_tiny, tmp_path, cli):
    plain = train_tiny("digits-dcgan", "model.width=8", "train.steps=1", "train.sample_every=0",
                       "train.checkpoint_every=0")
    for run, folder in ((marked_run, "marked"), (plain, "plain")):
        assert cli("sample", str(run), "-n", "3", "--out", f"{tmp_path / folder}/")[0] == 0
    code, text, _ = cli("watermark", str(tmp_path / "marked"), "--run", str(marked_run), "--json")
    found = json.loads(text)
    assert code == 0 and len(found) == 3 and all(f["marked"] and f["p_value"] < 1e-6 for f in found)
    code, text, _ = cli("watermark", str(tmp_path / "plain"), "--key", KEY, "--json")
    assert code == 1 and not any(f["marked"] for f in json.loads(text))
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    fields = json.loads(cli("provenance", str(tmp_path / "marked" / "000000.png"), "--json")[1])
    assert len(fields["gankit:watermark"]) == 12 and KEY not in json.dumps(fields)  # a fingerprint, not the key
    for args, message in [((str(tmp_path / "marked"),), "--run RUN or --key"),
                          ((str(tmp_path / "marked"), "--run", str(plain)), "draws no watermark"),
                          ((str(tmp_path / "none.png"), "--key", KEY), "not an image file"),
                          ((str(tmp_path / "marked"), "--key", KEY, "--size", "big"), "is not WxH"),
                          ((str(tmp_path / "marked"), "--key", KEY, "--size", "0x0"), "8 pixels or more"),
                          ((str(tmp_path / "marked"), "--key", KEY, "--size", "-5x3"), "8 pixels or more"),
                          ((str(tmp_path / "tiny.png"), "--key", KEY), "too small to hold a watermark")]:
        code, _, err = cli("watermark", *args)
        assert code == 2 and message in err and "Traceback" not in err


def test_a_model_that_draws_no_images_refuses_a_watermark_before_training(ring_cfg, tmp_path):
    from gankit.train import Trainer

    with pytest.raises(UserError, match="watermark.key"):
        Trainer(ring_cfg("watermark.key=secret phrase"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()
