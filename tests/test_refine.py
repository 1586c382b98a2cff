"""Discriminator-guided sampling (DRS, MH-GAN): with a D that knows where the data is, refined samples are better than
plain ones; the calibration uses held-out data and the protocol says so; costs are reported; mistakes are one line."""

from __future__ import annotations

import json

import pytest
import torch

import gankit
from gankit.variants import GAN


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """A briefly trained ring8 GAN: its samples are mostly off the modes, so refinement has room."""
    run = tmp_path_factory.mktemp("refine") / "ring"
    cfg = gankit.load_config("ring8-gan", ["train.steps=150", "train.sample_every=0", "train.log_every=50",
                                           "train.export_discriminator=true"])
    gankit.train(cfg, run, progress=False)
    return run


@pytest.fixture
def oracle_d(monkeypatch, ring_run):
    """Replace D by an oracle whose logit falls with the distance to the nearest mode, so the test checks the
    sampler's arithmetic (calibration, acceptance rule, chains), not how well a 150-step D trained."""
    spec = gankit.load(ring_run).spec
    centers, std = torch.tensor(spec["centers"]), spec["std"]

    def score(self, x, cond=None):
        return 3.0 - torch.cdist(x.flatten(1), centers).min(dim=1).values / (10 * std)

    monkeypatch.setattr(GAN, "score", score)
    return centers, std


@pytest.mark.parametrize("method", ["drs", "mh"])
def test_refined_samples_are_closer_to_the_data(ring_run, oracle_d, method):
    centers, _ = oracle_d
    g = gankit.load(ring_run)
    x, stats = g.refined(method, 2000, seed=0)
    plain, refined = (torch.cdist(s, centers).min(dim=1).values.mean().item() for s in (g.sample(2000, seed=0), x))
    assert x.shape == (2000, 2)
    assert refined < 0.7 * plain, (plain, refined)  # mean distance to the nearest mode
    report = stats.as_dict()
    assert 0 < report["acceptance"] < 1 and report["g_evals_per_sample"] > 1
    assert report["calibration"]["real_samples"].startswith("held out")  # fresh draws, not the training set
    assert report["calibration"]["a"] > 0  # a D that likes the data is calibrated with a positive slope
    again, _ = g.refined(method, 2000, seed=0)
    assert torch.equal(again, x)  # seeded


def test_d_is_read_from_the_export_or_the_checkpoint(ring_run, oracle_d):
    g = gankit.load(ring_run)
    assert g.refined("drs", 10, seed=0)[1].as_dict()["discriminator"] == "model/discriminator.safetensors"


def test_cli_and_eval_refine(ring_run, oracle_d, cli, tmp_path):
    code, _, err = cli("sample", str(ring_run), "-n", "300", "--refine", "drs", "--out", str(tmp_path / "r.npz"))
    assert code == 0 and "acceptance" in err, err
    code, out, err = cli("eval", str(ring_run), "--refine", "mh", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["protocol"]["refine"]["method"] == "mh" and "hq_fraction" in result
    code, _, err = cli("sample", str(ring_run), "-n", "3", "--refine", "best", "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "unknown refinement 'best'" in err and err.count("error:") == 1


def test_a_variant_without_a_scoring_d_is_refused(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent / "plugins"))
    cfg = gankit.load_config("ring8-gan", ["variant=toy_variants:PhasedGAN", "train.steps=2", "train.sample_every=0"])
    gankit.train(cfg, tmp_path / "p", progress=False)
    with pytest.raises(gankit.UserError, match="no discriminator that scores samples"):
        gankit.load(tmp_path / "p").sample(5, seed=0, refine="drs")
