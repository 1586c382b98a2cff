"""Anomaly detection: training on the normal classes only, the AnoGAN / f-AnoGAN score, AUROC, `gankit score`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from conftest import KnownLatents, varied
from gankit import anomaly
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.train import load

TINY = ("model.width=8", "train.steps=3", "train.sample_every=0", "train.checkpoint_every=3")


@pytest.fixture(scope="module")
def normal3(train_tiny):
    return train_tiny("digits-dcgan", "data.normal=3", *TINY)


def test_data_normal_keeps_the_named_classes_and_says_so():
    data = load_dataset(DataConfig(name="shapes", n=300, normal=["circle", "4"]))  # a name and an index (ring)
    assert set(data.y.tolist()) == {0, 4} and data.spec()["normal"] == ["circle", "ring"]
    assert data.class_names == ["circle", "square", "triangle", "star", "ring", "cross"]  # the class list stays whole
    assert len(data.attributes["color"]) == len(data)


@pytest.mark.parametrize("args, message", [
    (["digits-dcgan", "data.normal=eleven"], "unknown class 'eleven'"),
    (["shapes-pix2pix", "data.normal=circle"], "drop one of them"),
])
def test_bad_normal_classes_exit_2(args, message, cli, tmp_path):
    code, _, err = cli("train", *args, "train.steps=1", "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 2 and message in err and not (tmp_path / "r").exists()


def test_unlabelled_data_has_no_normal_classes():
    from gankit.data import Dataset, only_classes

    with pytest.raises(anomaly.UserError, match="needs labelled data"):
        only_classes(Dataset("mine", "image", torch.zeros(4, 1, 8, 8)), ["0"])


def test_the_score_mixes_pixel_and_feature_residuals_by_kappa(normal3):
    gen = load(normal3)
    critic = anomaly.discriminator(normal3)
    assert critic is not None
    x = gen.sample(4, seed=2)
    both = anomaly.anomaly_scores(gen, x, critic, kappa=0.3, steps=2)
    assert torch.allclose(both.score, 0.7 * both.pixel + 0.3 * both.features, atol=1e-7)
    inv = anomaly.invert(gen, x, steps=2)
    with torch.no_grad():
        expected = (critic.features(x) - critic.features(inv.images)).pow(2).mean(1)
    assert torch.allclose(both.features, expected, atol=1e-6)
    assert torch.allclose(both.pixel, (x - inv.images).pow(2).flatten(1).mean(1), atol=1e-7)
    plain = anomaly.anomaly_scores(gen, x, None, steps=2)
    assert plain.features is None and torch.equal(plain.score, plain.pixel)


def test_what_g_draws_scores_below_what_it_cannot(normal3):
    """Catches a score whose sign is flipped: G's own samples must look normal next to noise."""
    gen = load(normal3)
    own = gen.sample(8, seed=0)  # the search's pool starts with these latents: an exact redraw exists
    noise = torch.rand(8, *own.shape[1:]) * 2 - 1
    scores = anomaly.anomaly_scores(gen, torch.cat([own, noise]), anomaly.discriminator(normal3), steps=5)
    assert anomaly.auroc(scores.score, torch.tensor([False] * 8 + [True] * 8)) == 1.0


def test_auroc_by_hand():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    anomalous = torch.tensor([False, False, True, True])
    assert anomaly.auroc(scores, anomalous) == pytest.approx(0.75)  # 3 of the 4 (anomaly, normal) pairs ordered


def test_a_conditional_d_gives_no_features_and_conditional_models_are_refused(train_tiny):
    run = train_tiny("digits-cgan", *TINY)
    assert anomaly.discriminator(run) is None  # its D judges digits with their class
    gen = load(run)
    with pytest.raises(anomaly.UserError, match="without classes"):
        anomaly.anomaly_scores(gen, gen.sample(2, labels=1), None)


def test_score_labels_a_folder_by_sub_folder_writes_a_csv_auroc_and_roc(normal3, tmp_path, cli):
    from PIL import Image

    data = load_dataset(DataConfig(name="digits", resolution=16))
    for label in ("3", "7"):
        (tmp_path / "test" / label).mkdir(parents=True)
        rows = (data.y == int(label)).nonzero().flatten()[:3]
        for i, row in enumerate(rows.tolist()):
            pixels = ((data.x[row, 0].float() + 1) * 127.5).clamp(0, 255).byte().numpy()
            Image.fromarray(pixels).save(tmp_path / "test" / label / f"{i}.png")
    code, _, err = cli("score", str(normal3), str(tmp_path / "test"), "--out", str(tmp_path / "s.csv"),
                       "--roc", str(tmp_path / "roc.png"), "--steps", "2")
    assert code == 0 and "AUROC" in err, err
    with open(tmp_path / "s.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["input"], r["label"], r["anomalous"]) for r in rows] == \
        [(f"{c}/{i}.png", c, str(int(c != "3"))) for c in ("3", "7") for i in range(3)]
    assert all(float(r["score"]) >= 0 for r in rows) and (tmp_path / "roc.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["{x}", "--out", "{tmp}/s.txt"], "written as .csv"),
    (["{x}", "--out", "{tmp}/s.csv", "--roc", "{tmp}/roc.png"], "needs labelled inputs"),
    (["{tmp}/missing", "--out", "{tmp}/s.csv"], "does not exist"),
    (["{tmp}/half.npz", "--out", "{tmp}/s.csv"], "whole class indices from 0 below 10"),
    (["{tmp}/neg.npz", "--out", "{tmp}/s.csv"], "whole class indices from 0 below 10"),
    (["{tmp}/short.npz", "--out", "{tmp}/s.csv"], "one per image"),
])
def test_bad_score_requests_exit_2_and_write_nothing(args, message, normal3, tmp_path, cli):
    np.savez(tmp_path / "x.npz", samples=np.zeros((2, 1, 16, 16), np.float32))
    for name, labels in (("half", [3.5, 3]), ("neg", [-1, 3]), ("short", [3])):  # labels the run cannot read
        np.savez(tmp_path / f"{name}.npz", samples=np.zeros((2, 1, 16, 16), np.float32), labels=np.array(labels))
    before = set(tmp_path.iterdir())
    code, _, err = cli("score", str(normal3), *[a.format(x=tmp_path / "x.npz", tmp=tmp_path) for a in args])
    assert code == 2 and message in err and set(tmp_path.iterdir()) == before


def test_an_encoder_redraws_in_one_pass_from_its_latents(normal3):
    """Catches an encoder path that ignores the encoder (or searches anyway): exact latents leave no residual."""
    gen = load(normal3)
    z = gen.latents(4, seed=77)
    x = gen.generate(z)
    exact = anomaly.anomaly_scores(gen, x, None, encoder=KnownLatents(z))
    assert exact.pixel.max() < 1e-10 and "one pass" in exact.protocol["latent"]
    wrong = anomaly.anomaly_scores(gen, x, None, encoder=KnownLatents(-z))
    assert (wrong.pixel > 1e-6).all()


def test_the_izif_encoder_learns_to_redraw_the_normal_images(normal3):
    gen = varied(normal3)  # a G whose images depend on z, so there is something to find
    critic = anomaly.discriminator(normal3)
    images = gen.sample(64, seed=5)
    _, untrained = anomaly.train_encoder(gen, critic, images, steps=1)
    _, trained = anomaly.train_encoder(gen, critic, images, steps=80)
    assert trained["final_loss"] < 0.8 * untrained["final_loss"]
    assert all(p.requires_grad for p in gen.variant.parameters())  # G's flags come back after training


def test_score_with_encoder_trains_it_once_per_weights(normal3, tmp_path, cli, monkeypatch):
    import shutil

    monkeypatch.setattr(anomaly, "ENCODER_STEPS", 4)
    run = tmp_path / "run"
    shutil.copytree(normal3, run)
    np.savez(tmp_path / "x.npz", samples=np.zeros((2, 1, 16, 16), np.float32))
    args = ["score", str(run), str(tmp_path / "x.npz"), "--out", str(tmp_path / "s.csv"), "--encoder"]
    assert cli(*args)[0] == 0
    stamp = (run / "anomaly" / "encoder.safetensors").stat().st_mtime_ns
    assert json.loads((run / "anomaly" / "encoder.json").read_text())["steps"] == 4
    assert cli(*args)[0] == 0 and (run / "anomaly" / "encoder.safetensors").stat().st_mtime_ns == stamp


def test_eval_reports_the_auroc_on_every_class_for_a_model_of_normal_data(normal3, cli):
    code, out, err = cli("eval", str(normal3), "--json", "-n", "200")
    assert code == 0, err
    values = json.loads(out)
    protocol = values["protocol"]["anomaly"]
    assert 0 <= values["anomaly_auroc"] <= 1 and protocol["normal"] == ["3"]
    assert 0 < protocol["anomalous"] < protocol["images"] and "training" in protocol["note"]


def test_images_of_the_wrong_size_are_refused(normal3):
    with pytest.raises(anomaly.UserError, match="the model takes"):
        anomaly.anomaly_scores(load(normal3), torch.zeros(2, 1, 32, 32))


def test_neighbour_scores_are_the_mean_distance_to_the_k_nearest_normal_images_in_d_features(normal3):
    """Catches a bank that is not the normal images, the farthest neighbours taken, k ignored or features dropped."""
    critic = anomaly.discriminator(normal3)
    normal = anomaly.training_images(normal3)
    assert len(normal) > 100 and normal.shape[1:] == (1, 16, 16)
    x = torch.cat([normal[:3], torch.rand(3, 1, 16, 16) * 2 - 1])
    scores = anomaly.neighbour_scores(critic, normal, x, k=4)
    with torch.no_grad():
        distances = torch.cdist(critic.features(x).double(), critic.features(normal).double())
    expected = distances.sort(dim=1).values[:, :4].mean(1)
    assert torch.allclose(scores.score.double(), expected, rtol=1e-5)
    nearest = anomaly.neighbour_scores(critic, normal, x, k=1).score
    assert nearest[:3].abs().max() < 1e-3 and (nearest[3:] > 1e-2).all()  # a normal image is its own neighbour
    assert scores.pixel is None and scores.features is None and scores.protocol["k"] == 4


def test_noise_lies_farther_from_the_normal_images_than_held_out_normal_ones(normal3):
    """Catches a flipped sign: the score must rank noise above unseen 3s."""
    critic = anomaly.discriminator(normal3)
    normal = anomaly.training_images(normal3)
    held_out = normal[-8:] + 0.05 * torch.randn(8, 1, 16, 16)
    noise = torch.rand(8, 1, 16, 16) * 2 - 1
    scores = anomaly.neighbour_scores(critic, normal[:-8], torch.cat([held_out, noise]))
    assert anomaly.auroc(scores.score, torch.tensor([False] * 8 + [True] * 8)) == 1.0


def test_score_by_neighbours_from_the_cli_leaves_the_residual_columns_empty(normal3, tmp_path, cli):
    data = load_dataset(DataConfig(name="digits", resolution=16))
    rows = torch.cat([(data.y == 3).nonzero().flatten()[:4], (data.y == 7).nonzero().flatten()[:4]])
    np.savez(tmp_path / "x.npz", samples=data.x[rows].numpy(), labels=data.y[rows].numpy())
    code, _, err = cli("score", str(normal3), str(tmp_path / "x.npz"), "--out", str(tmp_path / "s.csv"),
                       "--knn", "5")
    assert code == 0 and "AUROC" in err, err
    with open(tmp_path / "s.csv") as f:
        got = list(csv.DictReader(f))
    assert [r["anomalous"] for r in got] == ["0"] * 4 + ["1"] * 4
    assert all(r["pixel_residual"] == "" and r["feature_residual"] == "" for r in got)
    critic = anomaly.discriminator(normal3)
    expected = anomaly.neighbour_scores(critic, anomaly.training_images(normal3), data.x[rows].float(), 5).score
    assert np.allclose([float(r["score"]) for r in got], expected.numpy(), rtol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--knn", "5", "--encoder"], "two ways to score"),
    (["--knn", "100000"], "asked of 183 normal training images"),
    (["--knn", "5", "--distance", "manhattan"], "--distance manhattan: not a distance gankit knows"),
    (["--distance", "cosine"], "--distance cosine measures --knn's neighbours"),
])
def test_bad_neighbour_requests_exit_2_and_write_nothing(args, message, normal3, tmp_path, cli):
    np.savez(tmp_path / "x.npz", samples=np.zeros((2, 1, 16, 16), np.float32))
    code, _, err = cli("score", str(normal3), str(tmp_path / "x.npz"), "--out", str(tmp_path / "s.csv"), *args)
    assert code == 2 and message in err and not (tmp_path / "s.csv").exists()


def test_neighbours_need_a_run_with_its_d(normal3, tmp_path, cli):
    import shutil

    shutil.copytree(normal3 / "model", tmp_path / "model")  # an exported model keeps G only
    np.savez(tmp_path / "x.npz", samples=np.zeros((2, 1, 16, 16), np.float32))
    code, _, err = cli("score", str(tmp_path / "model"), str(tmp_path / "x.npz"), "--out", str(tmp_path / "s.csv"),
                       "--knn", "5")
    assert code == 2 and "--knn needs the D" in err and not (tmp_path / "s.csv").exists()


def test_eval_flags_the_classes_outside_data_normal_as_the_anomalies(normal3, monkeypatch):
    """A perfect detector (scores 1 exactly on the images not of class 3) scores AUROC 1, not 0; `anomalous`
    counts those images."""
    from types import SimpleNamespace

    from gankit.report import evaluate

    y = torch.tensor([3, 1, 3, 5, 3, 0, 9])
    monkeypatch.setattr(evaluate, "load_heldout_labelled",
                        lambda data, seed, n: (torch.zeros(7, 1, 16, 16), y, [str(i) for i in range(10)], "no split"))
    monkeypatch.setattr(anomaly, "discriminator", lambda run_dir: None)
    monkeypatch.setattr(anomaly, "anomaly_scores",
                        lambda gen, x, critic, seed: SimpleNamespace(score=(y != 3).float(), protocol={}))
    values, protocol = evaluate.RUN_METRICS["anomaly"].compute(evaluate.RunEval(load(normal3), normal3))
    assert values["anomaly_auroc"] == 1.0
    assert protocol["anomaly"]["anomalous"] == 4 and protocol["anomaly"]["images"] == 7
