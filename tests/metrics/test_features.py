"""Feature extractors: the shipped digits classifier keeps its held-out accuracy, shapes and protocol are as
documented, extraction streams, and the training script reproduces the recipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gankit.data import digits
from gankit.errors import UserError
from gankit.metrics import FeatureStats, inception_score, load_evaluator
from gankit.metrics.digits_classifier import CARD, WEIGHTS, accuracy, index_digest, read_card, stratified_split
from gankit.metrics.inception import WEIGHTS_ENV, InceptionV3FID

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_digits_evaluator.py"


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def evaluator():
    return load_evaluator("digits")


def heldout_of(card: dict, labels: np.ndarray) -> np.ndarray:
    """The held-out indices the card describes, checked against the digest it recorded."""
    split = card["split"]
    train, heldout = stratified_split(labels, split["holdout"], split["seed"])
    assert index_digest(heldout) == split["heldout_sha256"]
    assert len(heldout) == split["heldout"] and len(train) == split["train"]
    return heldout


def test_shipped_classifier_keeps_its_heldout_accuracy(data, evaluator):
    card = read_card()
    heldout = heldout_of(card, data.y.numpy())
    acc = accuracy(evaluator.net, data.x[heldout], data.y[heldout])
    assert acc >= 0.97
    assert acc == pytest.approx(card["accuracy"]["heldout"], abs=1e-3)
    assert WEIGHTS.stat().st_size < 1_000_000 and CARD.is_file()


def test_features_and_logits_have_the_documented_shapes(data, evaluator):
    x = data.x[:5]  # (5, 1, 16, 16) in [-1, 1]
    assert evaluator.name == "digits" and evaluator.dim == 128
    assert evaluator.features(x).shape == (5, 128) and evaluator.logits(x).shape == (5, 10)
    # RGB and other sizes are converted (grey, bilinear resize): a 3-channel 32x32 copy gives nearly the same features
    big_rgb = torch.nn.functional.interpolate(x, size=32, mode="nearest").expand(-1, 3, -1, -1)
    assert evaluator.logits(big_rgb).argmax(1).tolist() == evaluator.logits(x).argmax(1).tolist()
    protocol = evaluator.protocol()
    assert protocol["extractor"] == "digits" and protocol["input"] == "16x16x1"
    assert len(protocol["weights_sha256"]) == 64


def test_extract_streams_the_same_statistics(data, evaluator):
    batches = data.x[:300].split(64)
    streamed = evaluator.extract(batches, 300, keep=True, keep_logits=True)
    direct = FeatureStats()
    direct.update(evaluator.features(data.x[:300]))
    np.testing.assert_allclose(streamed.stats.sigma, direct.sigma, rtol=1e-9, atol=1e-9)
    assert streamed.features.shape == (300, 128) and streamed.logits.shape == (300, 10)
    assert evaluator.extract(data.x[:10].split(4), 10).features is None  # kept only when asked


def test_extract_keeps_at_most_max_rows_and_scores_every_sample(data, evaluator):
    # What lets `gankit eval -n 50000` hold memory flat: the statistics and the Inception Score see all 300 samples,
    # the kept features are only the first 100 rows, and no logits are kept for the score.
    x = data.x[:300]
    streamed = evaluator.extract(x.split(64), 300, keep=True, max_rows=100, score_splits=10)
    everything = evaluator.extract(x.split(64), 300, keep=True, keep_logits=True)
    assert streamed.stats.n == 300 and streamed.logits is None
    assert torch.equal(streamed.features, everything.features[:100])
    np.testing.assert_array_equal(streamed.stats.sigma, everything.stats.sigma)
    assert streamed.score == pytest.approx(inception_score(everything.logits, splits=10), rel=1e-12)
    assert evaluator.extract(x.split(64), 300, keep=True, max_rows=1000).features.shape == (300, 128)
    assert load_evaluator("raw").extract(x.split(64), 300, score_splits=10).score is None  # raw: no logits, no IS


def test_raw_features_are_the_flattened_input():
    raw = load_evaluator("raw")
    x = torch.rand(4, 3, 5, 5)
    assert torch.equal(raw.features(x), x.flatten(1)) and raw.logits(x) is None
    assert raw.features(torch.rand(7, 2)).shape == (7, 2)  # vectors as they are


def test_bad_names_and_weights_are_user_errors(monkeypatch):
    with pytest.raises(UserError, match="unknown feature extractor 'clip'"):
        load_evaluator("clip")
    with pytest.raises(UserError, match="raw features use no weights"):
        load_evaluator("raw", "w.safetensors")
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(UserError, match="Inception weights are needed") as info:
        load_evaluator("inception")
    assert WEIGHTS_ENV in info.value.hint
    with pytest.raises(UserError, match="needs images"):
        load_evaluator("digits").features(torch.rand(3, 2))


def test_stratified_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, heldout = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[heldout]).tolist() == [2, 4, 6, 8]
    assert not set(train) & set(heldout) and len(train) + len(heldout) == 100
    assert np.array_equal(heldout, stratified_split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(heldout, stratified_split(labels, 0.2, seed=4)[1])


def test_script_writes_weights_and_card(tmp_path, data):
    """A 2-epoch run of the training script (the shipped weights took 25): same split and architecture, loadable."""
    out = tmp_path / "digits.safetensors"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--epochs", "2"], check=True, capture_output=True)
    card, shipped = read_card(out.with_suffix(".json")), read_card()
    assert card["split"] == shipped["split"] and card["architecture"] == shipped["architecture"]
    assert card["training"]["epochs"] == 2 and card["accuracy"]["heldout"] > 0.5
    assert load_evaluator("digits", out).features(data.x[:3]).shape == (3, 128)


def test_inception_reads_weights_from_the_environment(tmp_path, monkeypatch, data):
    path = tmp_path / "inception.safetensors"
    save_file(InceptionV3FID().state_dict(), str(path))  # random weights: only the wiring is under test
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    inception = load_evaluator("inception")
    feats, logits = inception.features_and_logits(data.x[:2])  # grey 16x16 -> RGB 299x299
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    protocol = inception.protocol()
    assert protocol["input"] == "299x299x3" and protocol["resize"] == "bilinear (as pytorch-fid)"
    assert protocol["weights"] == path.name and len(protocol["weights_sha256"]) == 64
