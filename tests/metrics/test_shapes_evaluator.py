"""The shipped shapes evaluator: held-out accuracy of both heads on the split its card records, the documented
index conventions of `classify`, feature shapes, `gankit fid --features shapes`, and the training script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data.shapes import COLORS, SHAPES, label_names, shapes
from gankit.errors import UserError
from gankit.metrics import load_evaluator
from gankit.metrics.digits_classifier import index_digest, stratified_split
from gankit.metrics.shapes_classifier import CARD, WEIGHTS, accuracies, read_card

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_shapes_evaluator.py"


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator("shapes")


@pytest.fixture(scope="module")
def heldout():
    """(images in [-1, 1], shape, colour) of the held-out split the card describes, checked against its digest."""
    card = read_card()
    data = shapes(card["data"]["n"], card["data"]["resolution"], label="shape_color", seed=card["data"]["seed"])
    split = card["split"]
    train, held = stratified_split(data.y.numpy(), split["holdout"], split["seed"])
    assert index_digest(held) == split["heldout_sha256"]
    assert len(held) == split["heldout"] and len(train) == split["train"]
    index = torch.from_numpy(held)
    return data.take(index)[0], data.attributes["shape"][index], data.attributes["color"][index]


def test_shipped_weights_keep_their_heldout_accuracy(evaluator, heldout):
    card = read_card()
    acc = accuracies(evaluator.net, *heldout)
    assert acc["shape"] >= 0.98 and acc["color"] >= 0.98
    assert acc == pytest.approx(card["accuracy"]["heldout"], abs=1e-3)
    assert WEIGHTS.stat().st_size < 1_000_000 and CARD.is_file()
    assert card["classes"] == {"shape": list(SHAPES), "color": list(COLORS)}


def test_classify_index_conventions(evaluator, heldout):
    x, shape, color = (t[:500] for t in heldout)
    by_shape, by_color = evaluator.classify(x, "shape"), evaluator.classify(x, "color")
    pair = evaluator.classify(x, "shape_color")
    assert by_shape.dtype == torch.int64 and by_shape.shape == (500,)
    assert torch.equal(pair, by_shape * len(COLORS) + by_color)
    assert (by_shape == shape).double().mean() >= 0.98 and (by_color == color).double().mean() >= 0.98
    assert torch.equal(evaluator.logits(x).argmax(1), by_shape)  # logits are the shape head's (for IS)
    big = torch.nn.functional.interpolate(x[:100], size=64, mode="bilinear")  # other sizes are resized
    assert (evaluator.classify(big, "shape_color") == pair[:100]).double().mean() >= 0.95
    # label_names turns them into the dataset's class names, whatever subset the dataset uses
    subset = shapes(n=200, shapes=["star", "ring"], colors=["blue", "white"], label="shape_color", seed=2)
    names = label_names(evaluator.classify(subset.take(torch.arange(200))[0], "shape_color"), "shape_color")
    assert sum(n == subset.class_names[y] for n, y in zip(names, subset.y.tolist())) >= 0.98 * 200
    with pytest.raises(UserError, match="unknown shapes label"):
        evaluator.classify(x, "size")


def test_features_and_protocol(evaluator, heldout):
    x = heldout[0][:6]
    assert evaluator.name == "shapes" and evaluator.dim == 128
    assert evaluator.features(x).shape == (6, 128) and evaluator.logits(x).shape == (6, len(SHAPES))
    protocol = evaluator.protocol()
    assert protocol["extractor"] == "shapes" and protocol["input"] == "32x32x3"
    assert protocol["weights"] == "shapes.safetensors" and len(protocol["weights_sha256"]) == 64
    assert protocol["heldout_accuracy"] == read_card()["accuracy"]["heldout"]


def test_fid_of_real_halves_is_far_below_noise(cli, tmp_path):
    x = shapes(n=2000, seed=1).x.numpy()  # (N, 3, 32, 32) uint8, as `gankit sample --out X.npz` would hold
    np.savez(tmp_path / "a.npz", samples=x[:1000])
    np.savez(tmp_path / "b.npz", samples=x[1000:])
    np.savez(tmp_path / "noise.npz", samples=np.random.default_rng(0).integers(0, 256, x[:1000].shape, np.uint8))

    def fid(a: str, b: str) -> dict:
        code, out, err = cli("fid", str(tmp_path / a), str(tmp_path / b), "--features", "shapes", "--json")
        assert code == 0, err
        return json.loads(out)

    halves, noise = fid("a.npz", "b.npz"), fid("a.npz", "noise.npz")
    assert halves["protocol"]["extractor"]["extractor"] == "shapes"
    assert halves["fid"] * 20 < noise["fid"]


def test_script_writes_weights_and_card(tmp_path, heldout):
    """A one-epoch run on 600 images (the shipped weights used 20,000 and 8 epochs): loadable, recorded in the card."""
    out = tmp_path / "shapes.safetensors"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--epochs", "1", "--n", "600"], check=True,
                   capture_output=True)
    card, shipped = read_card(out.with_suffix(".json")), read_card()
    assert card["architecture"] == shipped["architecture"] and card["classes"] == shipped["classes"]
    assert card["data"]["n"] == 600 and card["training"]["epochs"] == 1 and card["split"]["heldout"] == 120
    assert load_evaluator("shapes", out).features(heldout[0][:3]).shape == (3, 128)


def test_card_names_the_renderers_classes_in_order():
    """The evaluator names what it sees from its card; the card must list the renderer's shapes and colours in the
    renderer's order (the metrics layer never imports the data set, so this test holds the two together)."""
    card = json.loads((Path(__file__).resolve().parents[2] / "gankit/metrics/weights/shapes.json").read_text())
    assert card["classes"] == {"shape": list(SHAPES), "color": list(COLORS)}


def test_blurry_and_simplified_shapes_are_still_recognised(evaluator):
    """Why shape-conditional GANs scored at chance was not the evaluator: it names real shapes blurred to half their
    resolution (softer than GAN samples that are recognisable at all) and the easier difficulty settings."""
    from gankit.data.shapes import Difficulty

    for difficulty in (None, Difficulty(size_range=(0.35, 0.35), jitter=0, rotation=0, noise=0, gradient=0)):
        data = shapes(n=600, seed=7, difficulty=difficulty)
        x = data.take(torch.arange(600))[0]
        soft = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 2), scale_factor=2, mode="bilinear")
        assert (evaluator.classify(x, "shape") == data.y).double().mean() >= 0.98
        assert (evaluator.classify(soft, "shape") == data.y).double().mean() >= 0.93
